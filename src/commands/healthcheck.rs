//! `escalator healthcheck`: one HTTP GET of this process's own `/healthz` (or `/readyz`), exit 0
//! on 200 and 1 otherwise. It exists for container images without a shell or curl (the
//! Dockerfile's `HEALTHCHECK`), so the image needs nothing but the binary to check itself.

use std::{net::SocketAddr, process::ExitCode, time::Duration};

use clap::Args;

use crate::exit;

/// Arguments of `escalator healthcheck`.
#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The path to ask: `/healthz` (the process runs) or `/readyz` (database and worker up).
    #[arg(long, default_value = "/healthz")]
    pub path: String,
    /// The full URL instead (default: `ESCALATOR_HTTP_ADDR` with an unspecified address such as
    /// 0.0.0.0 asked on loopback, plus `--path`).
    #[arg(long)]
    pub url: Option<String>,
    /// Longest wait for the answer, in seconds.
    #[arg(long, default_value_t = 3)]
    pub timeout_secs: u64,
}

/// Where a server listening on `listen` is reached from inside its own host: an unspecified
/// address (`0.0.0.0`, `::`) is asked on loopback.
pub fn local_url(listen: SocketAddr, path: &str) -> String {
    let ip = match listen.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        }
        ip => ip,
    };
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    format!("http://{}{path}", SocketAddr::new(ip, listen.port()))
}

/// Runs the check; 0 when the answer is 200, 1 when it is anything else or none, 64 for bad
/// configuration.
pub fn main(args: HealthcheckArgs) -> ExitCode {
    let url = match args.url {
        Some(u) => u,
        None => match exit::settings("escalator") {
            Ok(s) => local_url(s.http_addr, &args.path),
            Err(code) => return code,
        },
    };
    let rt = match exit::current_thread_runtime("escalator healthcheck") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let answer = rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(args.timeout_secs.max(1)))
            .build()?;
        let resp = client.get(&url).send().await?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        Ok::<_, reqwest::Error>((status, body))
    });
    match answer {
        Ok((status, _)) if status == reqwest::StatusCode::OK => ExitCode::SUCCESS,
        Ok((status, body)) => {
            eprintln!(
                "escalator healthcheck: {url} answered {status}: {}",
                body.trim()
            );
            ExitCode::from(exit::CHECK_FAILED)
        }
        Err(e) => {
            eprintln!("escalator healthcheck: {url}: {e}");
            ExitCode::from(exit::CHECK_FAILED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_listen_address_is_asked_on_loopback() {
        let at = |s: &str| s.parse::<SocketAddr>().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            local_url(at("0.0.0.0:8080"), "/healthz"),
            "http://127.0.0.1:8080/healthz"
        );
        assert_eq!(
            local_url(at("[::]:8080"), "readyz"),
            "http://[::1]:8080/readyz"
        );
        assert_eq!(
            local_url(at("10.1.2.3:9000"), "/readyz"),
            "http://10.1.2.3:9000/readyz"
        );
    }
}
