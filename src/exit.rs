//! Exit codes of the command line and the prelude every one-shot command shares (settings,
//! runtime, store), so each command module maps its failures the same way. Each step takes
//! the command's name as its messages start (`escalator`, `escalator review export`).
//!
//! 0 success; 1 a check failed ([`CHECK_FAILED`]); 2 a usage error clap found itself; 64
//! ([`USAGE`], `EX_USAGE`) invalid configuration or an argument value clap cannot check (e.g.
//! `classify --tier gold`); 70 ([`SOFTWARE`], `EX_SOFTWARE`) the service failed at run time.

use std::{process::ExitCode, sync::Arc};

use crate::{config::Settings, env::ProcessEnv, store::Store};

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
pub fn settings(command: &str) -> Result<Settings, ExitCode> {
    Settings::load(&ProcessEnv).map_err(|e| {
        eprintln!("{command}: invalid configuration: {e}");
        ExitCode::from(USAGE)
    })
}

/// A multi-threaded runtime for a one-shot command, or exit 70.
///
/// # Errors
/// The exit code to return when the runtime cannot start.
pub fn runtime(command: &str) -> Result<tokio::runtime::Runtime, ExitCode> {
    started(
        command,
        tokio::runtime::Builder::new_multi_thread().enable_all(),
    )
}

/// A runtime on the calling thread, for a command that makes one call (`healthcheck`), or
/// exit 70.
///
/// # Errors
/// The exit code to return when the runtime cannot start.
pub fn current_thread_runtime(command: &str) -> Result<tokio::runtime::Runtime, ExitCode> {
    started(
        command,
        tokio::runtime::Builder::new_current_thread().enable_all(),
    )
}

fn started(
    command: &str,
    builder: &mut tokio::runtime::Builder,
) -> Result<tokio::runtime::Runtime, ExitCode> {
    builder.build().map_err(|e| {
        eprintln!("{command}: cannot start the async runtime: {e}");
        ExitCode::from(SOFTWARE)
    })
}

/// The routing log the settings name, connected and migrated, or exit 70.
///
/// # Errors
/// The exit code to return when the database cannot be opened.
pub async fn store(command: &str, settings: &Settings) -> Result<Arc<dyn Store>, ExitCode> {
    crate::store::connect(&settings.store).await.map_err(|e| {
        eprintln!("{command}: {e:#}");
        ExitCode::from(SOFTWARE)
    })
}

/// The exit code of a command written as `Result<ExitCode, ExitCode>` (the `Err` side from the
/// `?` of a prelude step).
pub fn code(result: Result<ExitCode, ExitCode>) -> ExitCode {
    result.unwrap_or_else(|code| code)
}
