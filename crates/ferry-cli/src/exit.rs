//! Exit codes: the one place that maps errors to them (documented in `ferry --help`).

use ferry_engine::ErrorClass;

/// An error the CLI itself raises, with its class.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    pub class: ErrorClass,
    pub message: String,
}

impl CliError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self { class, message: message.into() }
    }
}

pub const SUCCESS: u8 = 0;
pub const FAILURE: u8 = 1;
pub const BAD_INPUT: u8 = 2;
pub const NOT_FOUND: u8 = 3;
pub const LOCKED: u8 = 4;
pub const SETUP: u8 = 5;
pub const UNAVAILABLE: u8 = 6;

/// The exit code of an error: the class of the first typed error in its chain.
pub fn code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<CliError>() {
            return code_for_class(e.class);
        }
        if let Some(e) = cause.downcast_ref::<ferry_engine::Error>() {
            return code_for_class(e.class());
        }
        if let Some(e) = cause.downcast_ref::<ferry_store::StoreError>() {
            return code_for_class(ErrorClass::of_store_error(e.kind));
        }
    }
    FAILURE
}

fn code_for_class(class: ErrorClass) -> u8 {
    match class {
        ErrorClass::BadInput => BAD_INPUT,
        ErrorClass::NotFound => NOT_FOUND,
        ErrorClass::Locked => LOCKED,
        ErrorClass::Setup => SETUP,
        ErrorClass::Unavailable => UNAVAILABLE,
        _ => FAILURE,
    }
}

/// Whether the error is a closed pipe (`ferry ls | head`): not worth reporting.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|cause| cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
}
