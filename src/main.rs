//! The `rcfleet` binary: parse the command line, run the command, map errors to exit codes.

use clap::Parser;

fn main() {
    let cli = rcfleet::cli::Cli::parse();
    let code = match rcfleet::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            for message in err.messages() {
                eprintln!("error: {message}");
            }
            err.exit_code()
        }
    };
    std::process::exit(code);
}
