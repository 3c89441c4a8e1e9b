//! `escalator serve`: the gRPC and HTTP servers until SIGTERM or Ctrl-C, then the drain; exit
//! codes as in [`crate::exit`] (a model the API does not know is a usage error, 64).

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::{exit, shutdown, startup::App, telemetry};

/// Runs the service; returns the process exit code.
pub fn main() -> ExitCode {
    let run = || -> Result<(), ExitCode> {
        let settings = exit::settings("escalator")?;
        // Before the runtime: the trace exporter's blocking HTTP client owns its own.
        let telemetry = telemetry::init(&settings.telemetry).map_err(|e| {
            eprintln!("escalator: cannot set up tracing: {e:#}");
            ExitCode::from(exit::USAGE)
        })?;
        telemetry::install_panic_hook();
        let rt = exit::runtime("escalator")?;
        let result = rt.block_on(async {
            let app = App::build(settings).await.map_err(|e| {
                tracing::error!("cannot start: {e:#}");
                // A model the API does not know is a configuration error, like a bad value;
                // so is a callers file or TLS file that cannot be used.
                if e.downcast_ref::<crate::classifier::claude::models::ModelError>()
                    .is_some()
                    || e.downcast_ref::<crate::env::ConfigError>().is_some()
                {
                    ExitCode::from(exit::USAGE)
                } else {
                    ExitCode::from(exit::SOFTWARE)
                }
            })?;
            let token = CancellationToken::new();
            tokio::spawn(shutdown::cancel_on_signal(token.clone()));
            app.run_until_stopped(token).await.map_err(|e| {
                tracing::error!("server failed: {e:#}");
                ExitCode::from(exit::SOFTWARE)
            })
        });
        drop(rt);
        // Last: export the spans of the final requests.
        telemetry.shutdown();
        result
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}
