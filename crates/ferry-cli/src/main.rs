//! The `ferry` command: argument parsing, prompts and output around the ferry library crates.
//! **It holds no logic the libraries lack**: every command is a few calls into `ferry-engine`.

mod cli;
mod commands;
mod exit;
mod output;
mod prompt;
mod unlock;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut cli = cli::Cli::parse();
    cli.global = cli.global.with_environment();
    match commands::run(cli) {
        Ok(()) => ExitCode::from(exit::SUCCESS),
        Err(err) if exit::is_broken_pipe(&err) => ExitCode::from(exit::SUCCESS),
        Err(err) => {
            eprintln!("ferry: {err:#}");
            ExitCode::from(exit::code_for(&err))
        }
    }
}
