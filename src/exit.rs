//! Exit codes of the command line and the prelude every one-shot command shares (settings,
//! runtime), so each command module maps its failures the same way.
//!
//! 0 success; 1 a check failed ([`CHECK_FAILED`]); 2 a usage error clap found itself; 64
//! ([`USAGE`], `EX_USAGE`) invalid configuration or an argument value clap cannot check (e.g.
//! `classify --tier gold`); 70 ([`SOFTWARE`], `EX_SOFTWARE`) the service failed at run time.

use std::process::ExitCode;

use crate::{config::Settings, env::ProcessEnv};

/// A check failed: bad labels, accuracy below `--min-accuracy`, a row `eval` could not classify.
pub const CHECK_FAILED: u8 = 1;
/// `EX_USAGE` (sysexits.h): invalid configuration or argument value.
pub const USAGE: u8 = 64;
/// `EX_SOFTWARE` (sysexits.h): a failure at run time.
pub const SOFTWARE: u8 = 70;

/// The settings from the process environment, or exit 64 with the bad key on stderr.
///
/// # Errors
/// The exit code to return when the configuration is invalid.
pub fn settings() -> Result<Settings, ExitCode> {
    Settings::load(&ProcessEnv).map_err(|e| {
        eprintln!("escalator: invalid configuration: {e}");
        ExitCode::from(USAGE)
    })
}

/// A multi-threaded runtime for a one-shot command, or exit 70.
///
/// # Errors
/// The exit code to return when the runtime cannot start.
pub fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("escalator: cannot start the async runtime: {e}");
            ExitCode::from(SOFTWARE)
        })
}
