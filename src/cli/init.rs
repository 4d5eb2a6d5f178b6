//! `rcfleet init`: writes a commented inventory from flags or, on a terminal with no flags, from
//! a few questions. The text is checked by the inventory reader before anything is written, and
//! an existing file is only replaced with `--force`.

use std::io::{BufRead, IsTerminal, Write};

use super::GlobalArgs;
use crate::error::{Error, Result};
use crate::inventory::{self, defaults, init::Answers};

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The database host (MongoDB, NATS, Prometheus, Grafana): IP address, DNS name or ssh_config alias.
    #[arg(long, value_name = "ADDR")]
    pub db: Option<String>,
    /// The Traefik host, the one the public reaches.
    #[arg(long, value_name = "ADDR")]
    pub lb: Option<String>,
    /// An app host and its number of Rocket.Chat instances (2 when not given); repeat per host.
    #[arg(long, value_name = "ADDR[:N]")]
    pub app: Vec<String>,
    /// The public domain, e.g. chat.example.com.
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// The Rocket.Chat release to deploy.
    #[arg(long, value_name = "X.Y.Z", default_value = defaults::ROCKETCHAT_RELEASE)]
    pub release: String,
    /// The workspace's short name, prefix of every compose project.
    #[arg(long, default_value = "chat")]
    pub name: String,
    /// Serve HTTPS with a Let's Encrypt certificate for this account e-mail (plain HTTP without).
    #[arg(long, value_name = "ADDRESS")]
    pub email: Option<String>,
    /// Replace the inventory file if it exists.
    #[arg(long)]
    pub force: bool,
}

impl InitArgs {
    fn any_host_flag(&self) -> bool {
        self.db.is_some() || self.lb.is_some() || !self.app.is_empty() || self.domain.is_some()
    }
}

pub fn run(global: &GlobalArgs, args: InitArgs) -> Result<i32> {
    let path = &global.inventory;
    if path.exists() && !args.force {
        return Err(Error::bad_input(format!(
            "{}: already exists; rcfleet init never overwrites an inventory: pass --force to replace it, \
             or -i/--inventory to write another file",
            path.display()
        )));
    }
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let answers = if !args.any_host_flag() && interactive {
        ask(&args, &mut std::io::stdin().lock(), &mut std::io::stderr())?
    } else {
        from_flags(&args)?
    };
    let text = inventory::init::render(&answers);
    inventory::parse(&text, path)?;
    std::fs::write(path, &text).map_err(|err| {
        Error::failed(format!("{}: cannot write the inventory: {err}; check that the folder is writable", path.display()))
    })?;
    eprintln!("wrote {}; check it with `rcfleet plan -i {}`", path.display(), path.display());
    Ok(0)
}

fn from_flags(args: &InitArgs) -> Result<Answers> {
    let mut problems = Vec::new();
    let mut required = |value: &Option<String>, flag: &str, example: &str| match value {
        Some(value) => value.clone(),
        None => {
            problems.push(format!("init: {flag} is missing; give it, e.g. {flag} {example}"));
            String::new()
        }
    };
    let db = required(&args.db, "--db", "10.0.0.10");
    let lb = required(&args.lb, "--lb", "10.0.0.20");
    let domain = required(&args.domain, "--domain", "chat.example.com");
    if args.app.is_empty() {
        problems.push("init: no app host; give --app ADDR[:N] once per host, e.g. --app 10.0.0.31:2".into());
    }
    let mut apps = Vec::new();
    for text in &args.app {
        match inventory::init::parse_app(text) {
            Ok(app) => apps.push(app),
            Err(message) => problems.push(format!("init: --app: {message}")),
        }
    }
    if !problems.is_empty() {
        return Err(Error::BadInput(problems));
    }
    Ok(Answers { name: args.name.clone(), domain, release: args.release.clone(), email: args.email.clone(), db, lb, apps })
}

/// Asks for what the flags would have said; empty answers take the default shown.
fn ask(args: &InitArgs, input: &mut dyn BufRead, output: &mut dyn Write) -> Result<Answers> {
    let mut question = |text: &str, default: &str| -> Result<String> {
        let shown = if default.is_empty() { String::new() } else { format!(" [{default}]") };
        write!(output, "{text}{shown}: ").and_then(|_| output.flush()).map_err(io_failed)?;
        let mut line = String::new();
        if input.read_line(&mut line).map_err(io_failed)? == 0 {
            return Err(Error::bad_input("init: no answer (end of input); give the flags instead, see rcfleet init --help"));
        }
        let line = line.trim();
        Ok(if line.is_empty() { default.to_string() } else { line.to_string() })
    };
    let domain = question("Public domain of the workspace (e.g. chat.example.com)", "")?;
    let release = question("Rocket.Chat release", &args.release)?;
    let email = question("E-mail for Let's Encrypt (empty: plain HTTP)", "")?;
    let db = question("Database host address", "")?;
    let lb = question("Traefik host address", &db)?;
    let apps = question("App host addresses, ADDR[:N] separated by spaces", &db)?;
    let flags = InitArgs {
        db: Some(db),
        lb: Some(lb),
        app: apps.split([' ', ',']).filter(|a| !a.is_empty()).map(str::to_string).collect(),
        domain: Some(domain),
        release,
        name: args.name.clone(),
        email: Some(email).filter(|e| !e.is_empty()),
        force: args.force,
    };
    from_flags(&flags)
}

fn io_failed(err: std::io::Error) -> Error {
    Error::failed(format!("init: cannot talk to the terminal: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_flags() -> InitArgs {
        InitArgs {
            db: None,
            lb: None,
            app: vec![],
            domain: None,
            release: defaults::ROCKETCHAT_RELEASE.into(),
            name: "chat".into(),
            email: None,
            force: false,
        }
    }

    #[test]
    fn questions_give_the_same_answers_as_flags() {
        let mut input = "chat.example.com\n\nops@example.com\n10.0.0.10\n\n10.0.0.31:3 10.0.0.32\n".as_bytes();
        let mut output = Vec::new();
        let answers = ask(&no_flags(), &mut input, &mut output).unwrap();
        assert_eq!(answers.release, defaults::ROCKETCHAT_RELEASE);
        assert_eq!(answers.lb, "10.0.0.10");
        assert_eq!(answers.apps, vec![("10.0.0.31".into(), 3), ("10.0.0.32".into(), 2)]);
        assert_eq!(answers.email.as_deref(), Some("ops@example.com"));
        assert!(String::from_utf8(output).unwrap().contains("Rocket.Chat release [8.0.1]: "));
    }

    #[test]
    fn missing_flags_are_all_named() {
        let err = from_flags(&no_flags()).unwrap_err();
        let text = err.messages().join("\n");
        for flag in ["--db", "--lb", "--domain", "--app"] {
            assert!(text.contains(flag), "{flag} not named in {text}");
        }
    }
}
