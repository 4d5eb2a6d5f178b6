//! `rcfleet status`: arguments only; the work is in `ops::status`.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use super::GlobalArgs;
use crate::error::{exit, Result};
use crate::ops;
use crate::ops::report::Outcome;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Look again every SECONDS (e.g. 2, or 0.5), over the same SSH connections, until Ctrl-C
    /// or --count; hosts not reached are tried again each time. With --json, one document per
    /// line.
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    watch: Option<Duration>,
    /// With --watch: stop after this many looks; the exit status is the last one's.
    #[arg(long, value_name = "N", requires = "watch", value_parser = clap::value_parser!(u32).range(1..))]
    count: Option<u32>,
}

pub fn run(global: &GlobalArgs, args: StatusArgs) -> Result<i32> {
    let status = match args.watch {
        None => {
            let status = ops::status::status(&global.inventory, &global.connect())?;
            global.print(&status);
            status
        }
        Some(every) => {
            let clear = !global.json && std::io::stdout().is_terminal();
            let mut looked = 0;
            ops::status::watch(&global.inventory, &global.connect(), every, args.count, &mut |status| {
                looked += 1;
                let mut out = std::io::stdout().lock();
                let shown = if global.json {
                    writeln!(out, "{}", serde_json::to_string(&status.to_json()).expect("status serialises"))
                } else {
                    let of = args.count.map(|count| format!(" of {count}")).unwrap_or_default();
                    // Like watch(1): each look replaces the last one on a terminal.
                    let home = if clear { "\x1b[H\x1b[2J" } else { "" };
                    write!(
                        out,
                        "{home}Every {}s: look {looked}{of} at {}, {:.2}s; Ctrl-C stops\n\n{}\n",
                        every.as_secs_f64(),
                        status.observed_at,
                        status.observe_seconds,
                        status.to_text()
                    )
                };
                // A reader gone (`| head`) ends the watch, as --count or Ctrl-C does.
                shown.and_then(|()| out.flush()).is_ok()
            })?
        }
    };
    Ok(if status.healthy { 0 } else { exit::UNHEALTHY })
}

/// A number of seconds, whole or not, from 0 to a day.
fn seconds(text: &str) -> std::result::Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if (0.0..=86_400.0).contains(&value) => Ok(Duration::from_secs_f64(value)),
        _ => Err(format!("{text:?} is not a number of seconds from 0 to 86400 (e.g. 2 or 0.5)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_takes_seconds_from_zero_to_a_day() {
        assert_eq!(seconds("2"), Ok(Duration::from_secs(2)));
        assert_eq!(seconds("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(seconds("0"), Ok(Duration::ZERO));
        for bad in ["-1", "abc", "", "NaN", "inf", "86401"] {
            assert!(seconds(bad).is_err(), "{bad:?} was taken");
        }
    }
}
