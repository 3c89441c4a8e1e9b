//! Issue 24's controls, each tried the way an attacker or a careless operator would meet it:
//! the gRPC API's callers ([`grpc`]) and transport ([`tls`]), secrets in the start-up log
//! ([`logs`]), the review pages' logins and sessions ([`sessions`]). Each module names the
//! threat it tests.

mod grpc;
mod logs;
mod sessions;
mod tls;

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A free port on 127.0.0.1.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `escalator serve` with only `env` set (and the log level), its stderr in `log`.
pub(crate) fn serve(env: &[(&str, &str)], log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_escalator"))
        .arg("serve")
        .env_clear()
        .env("ESCALATOR_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// Waits until `GET http://127.0.0.1:{http}/readyz` answers 200, failing with the log when the
/// process exits first or 60 s pass.
pub(crate) async fn ready(child: &mut Child, http: u16, log: &Path) {
    let client = reqwest::Client::new();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "escalator serve exited with {status} before it was ready:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if client
            .get(format!("http://127.0.0.1:{http}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not ready after 60 s:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGTERM, then the exit must be clean.
pub(crate) fn stop(mut child: Child, log: &Path) {
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "{status}\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}
