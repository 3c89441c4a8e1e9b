//! A TCP proxy between the service and PostgreSQL that counts database round trips.
//!
//! Hand-written because no crate does this: the crates that speak the PostgreSQL protocol are
//! drivers (sqlx, tokio-postgres, whose `postgres-protocol` only *writes* frontend messages)
//! or server frameworks (pgwire) that want to own the connection and answer queries
//! themselves. The proxy only needs the frontend framing, which is five bytes (a type byte and
//! a big-endian `int32` length that counts itself, PostgreSQL docs "Message Formats"), while the
//! bytes go through unchanged.
//!
//! A round trip is a frontend message the client then waits on: `Sync` (`S`, the end of an
//! extended-query pipeline: Parse/Bind/Describe/Execute) and a simple `Query` (`Q`, e.g. `BEGIN`
//! and `COMMIT`). The startup packet has no type byte; an `SSLRequest` or `GSSENCRequest` is
//! answered `N` by the proxy itself, so the session stays plaintext and countable.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

/// `SSLRequest` code (PostgreSQL docs, "Message Formats").
const SSL_REQUEST: u32 = 80_877_103;
/// `GSSENCRequest` code.
const GSSENC_REQUEST: u32 = 80_877_104;

/// What the proxy has seen, over every connection.
#[derive(Debug, Default)]
pub(crate) struct PgCounters {
    /// `Sync` messages: extended-query round trips.
    pub(crate) syncs: AtomicU64,
    /// Simple `Query` messages: simple-query round trips.
    pub(crate) queries: AtomicU64,
    /// `Sync` messages with nothing before them since the last round trip: no statement, only
    /// a check that the connection is alive (sqlx sends one as a connection goes back to its
    /// pool). Counted in `syncs` too.
    pub(crate) checks: AtomicU64,
    /// Connections opened by the service.
    pub(crate) connections: AtomicU64,
}

impl PgCounters {
    /// Round trips so far: syncs plus simple queries.
    pub(crate) fn round_trips(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed) + self.queries.load(Ordering::Relaxed)
    }
}

/// A running proxy; aborted on drop.
pub(crate) struct PgProxy {
    /// Where the service connects instead of PostgreSQL.
    pub(crate) addr: SocketAddr,
    /// The counts.
    pub(crate) counters: Arc<PgCounters>,
    task: JoinHandle<()>,
}

impl Drop for PgProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PgProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards every connection to `upstream`.
    ///
    /// # Errors
    /// When no port can be bound.
    pub(crate) async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(PgCounters::default());
        let c = counters.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let c = c.clone();
                tokio::spawn(async move {
                    if let Err(e) = relay(client, upstream, &c).await {
                        tracing::debug!(error = %e, "bench pg proxy connection ended");
                    }
                });
            }
        });
        Ok(Self {
            addr,
            counters,
            task,
        })
    }
}

async fn relay(
    mut client: TcpStream,
    upstream: SocketAddr,
    counters: &Arc<PgCounters>,
) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    // The startup phase: length-prefixed packets without a type byte.
    let startup = loop {
        let mut head = [0u8; 8];
        client.read_exact(&mut head).await?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let code = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if len == 8 && (code == SSL_REQUEST || code == GSSENC_REQUEST) {
            // "N": not supported; the client continues in plaintext with a StartupMessage.
            client.write_all(b"N").await?;
            continue;
        }
        let rest = usize::try_from(len)
            .ok()
            .and_then(|l| l.checked_sub(8))
            .filter(|r| *r <= 1 << 20)
            .ok_or_else(|| std::io::Error::other("bad startup packet length"))?;
        let mut packet = head.to_vec();
        packet.resize(8 + rest, 0);
        client.read_exact(&mut packet[8..]).await?;
        break packet;
    };
    let mut server = TcpStream::connect(upstream).await?;
    server.set_nodelay(true)?;
    server.write_all(&startup).await?;
    counters.connections.fetch_add(1, Ordering::Relaxed);

    let (mut client_r, mut client_w) = client.into_split();
    let (mut server_r, mut server_w) = server.into_split();
    let c = counters.clone();
    let up = async move {
        let mut frames = FrameCounter::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = client_r.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            frames.feed(&buf[..n], &c);
            server_w.write_all(&buf[..n]).await?;
        }
        server_w.shutdown().await
    };
    let down = async move {
        tokio::io::copy(&mut server_r, &mut client_w).await?;
        client_w.shutdown().await
    };
    let (u, d) = tokio::join!(up, down);
    u.and(d)
}

/// Splits the frontend byte stream (after startup) into messages, counting round trips. Fed
/// whatever the socket read returned, so a header may arrive in pieces.
#[derive(Debug, Default)]
struct FrameCounter {
    header: [u8; 5],
    have: usize,
    skip: u64,
    /// A message other than `Sync` and `Query` came since the last round trip.
    pending: bool,
}

impl FrameCounter {
    fn feed(&mut self, mut data: &[u8], counters: &PgCounters) {
        while !data.is_empty() {
            if self.skip > 0 {
                let n = usize::try_from(self.skip)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                self.skip -= n as u64;
                data = &data[n..];
                continue;
            }
            let n = (5 - self.have).min(data.len());
            self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == 5 {
                match self.header[0] {
                    b'S' => {
                        counters.syncs.fetch_add(1, Ordering::Relaxed);
                        if !self.pending {
                            counters.checks.fetch_add(1, Ordering::Relaxed);
                        }
                        self.pending = false;
                    }
                    b'Q' => {
                        counters.queries.fetch_add(1, Ordering::Relaxed);
                        self.pending = false;
                    }
                    _ => self.pending = true,
                }
                let len = u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]);
                self.skip = u64::from(len.saturating_sub(4));
                self.have = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&(u32::try_from(body.len()).unwrap_or(0) + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    /// Parse, Bind, Execute, Sync, then a simple query and a Terminate.
    fn stream() -> Vec<u8> {
        let mut s = Vec::new();
        s.extend(msg(b'P', b"\0SELECT 1\0\0\0"));
        s.extend(msg(b'B', b"\0\0\0\0\0\0\0\0"));
        s.extend(msg(b'E', b"\0\0\0\0\0"));
        s.extend(msg(b'S', b""));
        // A bare Sync: the pool's liveness check.
        s.extend(msg(b'S', b""));
        s.extend(msg(b'Q', b"COMMIT\0"));
        // A body that contains the byte 'S' must not be counted.
        s.extend(msg(b'd', b"SSSS"));
        s.extend(msg(b'X', b""));
        s
    }

    #[test]
    fn counts_sync_query_and_bare_checks_whole_or_in_pieces() {
        for chunk in [usize::MAX, 1, 2, 3, 7] {
            let c = PgCounters::default();
            let mut f = FrameCounter::default();
            let s = stream();
            for piece in s.chunks(chunk.min(s.len())) {
                f.feed(piece, &c);
            }
            assert_eq!(c.syncs.load(Ordering::Relaxed), 2, "chunk {chunk}");
            assert_eq!(c.checks.load(Ordering::Relaxed), 1, "chunk {chunk}");
            assert_eq!(c.queries.load(Ordering::Relaxed), 1, "chunk {chunk}");
            assert_eq!(c.round_trips(), 3);
            assert_eq!((f.have, f.skip, f.pending), (0, 0, true));
        }
    }
}
