//! The `ferry` command: argument parsing, prompts and output around the ferry library crates.
//! **It holds no logic the libraries lack**: every command is a few calls into `ferry-engine`
//! and `ferry-net`. Errors carry typed hints, worded as commands in `hints.rs`.

mod cli;
mod commands;
mod exit;
mod hints;
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
            // One line: what went wrong (with its causes), then what to do about it.
            match hints::of(&err) {
                Some(hint) => eprintln!("ferry: {err:#}: {}", hints::text(&hint)),
                None => eprintln!("ferry: {err:#}"),
            }
            ExitCode::from(exit::code_for(&err))
        }
    }
}
