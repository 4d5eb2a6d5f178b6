//! `rcfleet completions SHELL` and `rcfleet man`: generated from the same argument definitions
//! the binary parses, so they never drift from it.

use clap::CommandFactory;
use clap_complete::Shell;

use super::{write_stdout, Cli};
use crate::error::{Error, Result};

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for. Bash: `source <(rcfleet completions bash)`; zsh: save as
    /// `_rcfleet` in a folder of $fpath; fish: save in ~/.config/fish/completions/rcfleet.fish.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

pub fn completions(args: CompletionsArgs) -> Result<i32> {
    let shell = match args.shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut buffer = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "rcfleet", &mut buffer);
    write_stdout(&buffer)
}

/// The manual page (roff) of rcfleet and every subcommand, on stdout: `rcfleet man | man -l -`.
pub fn man() -> Result<i32> {
    let command = Cli::command();
    let mut buffer = Vec::new();
    write_page(&command, &mut buffer)?;
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        write_page(&sub.clone().name(format!("rcfleet-{}", sub.get_name())), &mut buffer)?;
    }
    write_stdout(&buffer)
}

fn write_page(command: &clap::Command, buffer: &mut Vec<u8>) -> Result<()> {
    clap_mangen::Man::new(command.clone())
        .render(buffer)
        .map_err(|err| Error::failed(format!("cannot render the manual: {err}")))
}
