//! Asking a person for a line: on the terminal (hidden for secrets), or from standard input,
//! one line per question, when it is not a terminal (scripts and tests).

use crate::exit::CliError;
use anyhow::{Context, Result};
use ferry_engine::ErrorClass;
use std::io::{BufRead, IsTerminal, Write};
use zeroize::Zeroizing;

/// Tells a person at a terminal what comes next (scripts get no chatter on stderr).
pub fn note(message: &str) {
    if std::io::stdin().is_terminal() {
        eprintln!("{message}");
    }
}

/// Reads one answer. `secret` hides the typing on a terminal. The answer (a passphrase, a
/// recovery phrase) is zeroed in memory when dropped, and so is every copy made here.
pub fn line(prompt: &str, secret: bool) -> Result<Zeroizing<String>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        if secret {
            let typed = Zeroizing::new(rpassword::prompt_password(prompt).context("cannot read from the terminal")?);
            return Ok(Zeroizing::new(typed.trim().to_owned()));
        }
        eprint!("{prompt}");
        std::io::stderr().flush().ok();
    }
    let mut answer = Zeroizing::new(String::new());
    let read = stdin.lock().read_line(&mut answer).context("cannot read standard input")?;
    if read == 0 {
        return Err(CliError::new(
            ErrorClass::BadInput,
            format!("no answer to \"{}\": standard input ended (give one line per question)", prompt.trim()),
        )
        .into());
    }
    Ok(Zeroizing::new(answer.trim().to_owned()))
}

/// Reads a recovery phrase.
pub fn recovery_phrase(prompt: &str) -> Result<ferry_format::RecoveryPhrase> {
    let words = line(prompt, true)?;
    ferry_format::RecoveryPhrase::parse(&words).map_err(|e| CliError::new(ErrorClass::BadInput, e.to_string()).into())
}

/// Reads a new passphrase: twice on a terminal, once from standard input.
pub fn new_passphrase(prompt: &str) -> Result<Zeroizing<String>> {
    let first = line(prompt, true)?;
    if std::io::stdin().is_terminal() && *line("Repeat it: ", true)? != *first {
        return Err(
            CliError::new(ErrorClass::BadInput, "the passphrases differ: nothing was changed; try again").into()
        );
    }
    if first.is_empty() {
        return Err(CliError::new(ErrorClass::BadInput, "the passphrase is empty: nothing was changed").into());
    }
    Ok(first)
}
