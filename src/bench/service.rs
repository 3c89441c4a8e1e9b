//! The measured service: the real binary (`current_exe() serve`) as a child process, configured
//! only through environment variables and a generated `ESCALATOR_CONFIG` file, with its peak
//! memory and CPU time read from `/proc`.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    path::Path,
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    process::{Child, Command},
    sync::oneshot,
};

/// Lines of the service's log kept for an error message.
const TAIL_LINES: usize = 40;

/// A running service.
pub(crate) struct Service {
    child: Child,
    pid: u32,
    /// Its HTTP address (webhooks).
    pub(crate) http: SocketAddr,
    /// Its gRPC address.
    pub(crate) grpc: SocketAddr,
    /// Log lines at WARN and at ERROR so far.
    pub(crate) log_counts: Arc<LogCounts>,
    tail: Arc<Mutex<VecDeque<String>>>,
}

/// How many WARN and ERROR lines (panics included) the service logged, and the first distinct
/// ones.
#[derive(Debug, Default)]
pub(crate) struct LogCounts {
    /// WARN lines.
    pub(crate) warn: AtomicU64,
    /// ERROR lines and panic messages.
    pub(crate) error: AtomicU64,
    /// Up to [`DISTINCT_MESSAGES`] distinct `LEVEL message` texts per level.
    pub(crate) messages: Mutex<Vec<String>>,
}

/// Distinct WARN and ERROR messages kept for the report, per level.
const DISTINCT_MESSAGES: usize = 5;

/// Peak memory and CPU time of a process.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcStats {
    /// `VmHWM` (peak resident set), bytes.
    pub(crate) peak_rss_bytes: u64,
    /// `utime + stime`, seconds.
    pub(crate) cpu_secs: f64,
}

impl Service {
    /// Starts `exe serve` with exactly `env` (nothing inherited, so the caller's own
    /// `ESCALATOR_*`, `OTEL_*` or `LANGFUSE_*` cannot change what is measured), in `dir`, and
    /// waits for its "escalator ready" line, which carries the bound addresses.
    ///
    /// # Errors
    /// When it cannot be started, exits, or is not ready within `timeout`; the error carries the
    /// end of its log.
    pub(crate) async fn start(
        exe: &Path,
        env: &[(String, String)],
        dir: &Path,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let mut child = Command::new(exe)
            .arg("serve")
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {} serve", exe.display()))?;
        let pid = child.id().context("the service exited at once")?;
        let stderr = child.stderr.take().context("no stderr pipe")?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let log_counts = Arc::new(LogCounts::default());
        let (ready_tx, ready_rx) = oneshot::channel();
        tokio::spawn(read_log(stderr, tail.clone(), log_counts.clone(), ready_tx));
        let ready = tokio::select! {
            r = tokio::time::timeout(timeout, ready_rx) => r,
            status = child.wait() => {
                // Let the reader take the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                anyhow::bail!(
                    "the service exited before it was ready ({}):\n{}",
                    status.map_or_else(|e| e.to_string(), |s| s.to_string()),
                    tail_text(&tail)
                );
            }
        };
        let (http, grpc) = match ready {
            Ok(Ok(addrs)) => addrs,
            Ok(Err(_)) | Err(_) => {
                anyhow::bail!(
                    "the service did not log \"escalator ready\" within {} s:\n{}",
                    timeout.as_secs(),
                    tail_text(&tail)
                )
            }
        };
        Ok(Self {
            child,
            pid,
            http,
            grpc,
            log_counts,
            tail,
        })
    }

    /// The end of its log, for an error message.
    pub(crate) fn tail(&self) -> String {
        tail_text(&self.tail)
    }

    /// Peak RSS and CPU time so far, from `/proc/<pid>/status` and `/proc/<pid>/stat`.
    ///
    /// # Errors
    /// When `/proc` cannot be read (not Linux, or the process is gone).
    pub(crate) fn stats(&self) -> anyhow::Result<ProcStats> {
        proc_stats(self.pid)
    }

    /// SIGTERM, then waits up to `grace` for a clean exit (SIGKILL after). Returns whether it
    /// exited by itself with status 0.
    pub(crate) async fn stop(mut self, grace: Duration) -> bool {
        let term = i32::try_from(self.pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .map(|pid| rustix::process::kill_process(pid, rustix::process::Signal::TERM));
        if !matches!(term, Some(Ok(()))) {
            let _ = self.child.kill().await;
            return false;
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) => status.success(),
            _ => {
                let _ = self.child.kill().await;
                false
            }
        }
    }
}

fn tail_text(tail: &Mutex<VecDeque<String>>) -> String {
    let g = tail
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    g.iter().cloned().collect::<Vec<_>>().join("\n")
}

/// Reads the service's JSON log lines: finds the ready line, counts WARN and ERROR, keeps the
/// last lines. Runs until the pipe closes, so the child never blocks on a full pipe.
async fn read_log(
    stderr: tokio::process::ChildStderr,
    tail: Arc<Mutex<VecDeque<String>>>,
    counts: Arc<LogCounts>,
    ready: oneshot::Sender<(SocketAddr, SocketAddr)>,
) {
    let mut ready = Some(ready);
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        let fields = &v["fields"];
        // A panic message is not a log line: Rust's hook prints it as text.
        let panic = v.is_null() && line.contains("panicked at");
        let level = if panic {
            "PANIC"
        } else {
            v["level"].as_str().unwrap_or("")
        };
        let counter = match level {
            "WARN" => Some(&counts.warn),
            "ERROR" | "PANIC" => Some(&counts.error),
            _ => None,
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::Relaxed);
            let text = if panic {
                format!("PANIC {line}")
            } else {
                format!("{level} {}", fields["message"].as_str().unwrap_or(""))
            };
            let mut m = counts
                .messages
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let same_level = m.iter().filter(|t| t.starts_with(level)).count();
            if same_level < DISTINCT_MESSAGES && !m.contains(&text) {
                m.push(text);
            }
        }
        if fields["message"] == "escalator ready" {
            let addr = |k: &str| fields[k].as_str().and_then(|a| a.parse().ok());
            if let (Some(http), Some(grpc), Some(tx)) = (addr("http"), addr("grpc"), ready.take()) {
                let _ = tx.send((http, grpc));
            }
        }
        let mut g = tail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if g.len() == TAIL_LINES {
            g.pop_front();
        }
        g.push_back(line);
    }
}

/// Reads `VmHWM` and `utime + stime` of `pid` (proc(5)).
pub(crate) fn proc_stats(pid: u32) -> anyhow::Result<ProcStats> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    parse_proc(&status, &stat, rustix::param::clock_ticks_per_second())
}

fn parse_proc(status: &str, stat: &str, ticks_per_sec: u64) -> anyhow::Result<ProcStats> {
    let hwm_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/<pid>/status")?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    // Then state is field 3, utime field 14, stime field 15.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unexpected /proc/<pid>/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .context("unexpected /proc/<pid>/stat")
    };
    let ticks = tick(11)? + tick(12)?;
    #[allow(clippy::cast_precision_loss)]
    let cpu_secs = ticks as f64 / ticks_per_sec.max(1) as f64;
    Ok(ProcStats {
        peak_rss_bytes: hwm_kb * 1024,
        cpu_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_peak_rss_and_cpu_time() {
        let status =
            "Name:\tescalator\nVmPeak:\t  900000 kB\nVmHWM:\t   65536 kB\nVmRSS:\t   60000 kB\n";
        let stat = "4242 (escalator (x) y) S 1 4242 4242 0 -1 4194560 3049 0 0 0 250 50 0 0 20 0 12 0 123 456 789";
        let s = parse_proc(status, stat, 100).unwrap_or_default();
        assert_eq!(s.peak_rss_bytes, 64 * 1024 * 1024);
        assert!((s.cpu_secs - 3.0).abs() < 1e-9, "{}", s.cpu_secs);
        assert!(parse_proc("Name: x\n", stat, 100).is_err());
    }

    #[test]
    fn reads_this_process() {
        let s = proc_stats(std::process::id()).unwrap_or_default();
        assert!(s.peak_rss_bytes > 0);
    }
}
