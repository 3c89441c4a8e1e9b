//! Failed review logins, limited per client address and over all clients: after a few free
//! failures each further one makes the next login wait twice as long (1 s, 2 s, 4 s … up to a
//! cap), and a login that comes too early is answered 429 with `Retry-After` without its token
//! being checked. A success clears its address. So a guessed token costs exponential time from
//! one address, and many addresses together cannot guess faster than the global limit allows.
//!
//! Hand-written (a few counters under a mutex) rather than a rate-limiting crate: what is
//! limited is failures, not requests, and a success must clear them; the crates at hand
//! (governor, tower's rate limit) count every request. In memory, per replica: N replicas allow
//! N times the guesses, still exponentially slowed.

use std::{
    collections::HashMap,
    net::IpAddr,
    time::{Duration, Instant},
};

/// How one scope counts failures.
#[derive(Debug, Clone, Copy)]
struct Policy {
    /// Failures allowed before any wait.
    free: u32,
    /// The first wait; each further failure doubles it.
    base: Duration,
    /// The longest wait.
    max: Duration,
    /// Failures are forgotten after this long without one.
    forget: Duration,
}

/// Per client address: 5 free failures, then 1 s, 2 s, 4 s … up to 15 minutes.
const PER_ADDRESS: Policy = Policy {
    free: 5,
    base: Duration::from_secs(1),
    max: Duration::from_secs(15 * 60),
    forget: Duration::from_secs(3600),
};

/// Over all clients: 50 free failures (a team mistyping), then 1 s … up to one minute, so an
/// attack from many addresses locks everyone out for a minute at most.
const GLOBAL: Policy = Policy {
    free: 50,
    base: Duration::from_secs(1),
    max: Duration::from_secs(60),
    forget: Duration::from_secs(15 * 60),
};

/// Addresses tracked at most; past it, stale ones are dropped, and a new address is only
/// counted globally (memory stays bounded under an attack from many addresses).
const MAX_ADDRESSES: usize = 10_000;

/// Failures of one scope.
#[derive(Debug, Clone, Copy)]
struct Counter {
    failures: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

impl Counter {
    fn new(now: Instant) -> Self {
        Self {
            failures: 0,
            last: now,
            blocked_until: None,
        }
    }

    /// How long until a login may be tried, if it must wait.
    fn wait(&self, now: Instant) -> Option<Duration> {
        self.blocked_until
            .and_then(|until| until.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    /// Counts a failure at `now` under `policy`.
    fn fail(&mut self, now: Instant, policy: Policy) {
        if now.saturating_duration_since(self.last) > policy.forget {
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        self.last = now;
        if self.failures > policy.free {
            let doublings = (self.failures - policy.free - 1).min(30);
            let wait = policy
                .base
                .saturating_mul(1u32 << doublings)
                .min(policy.max);
            self.blocked_until = Some(now + wait);
        }
    }

    fn stale(&self, now: Instant, policy: Policy) -> bool {
        self.wait(now).is_none() && now.saturating_duration_since(self.last) > policy.forget
    }
}

/// Which limit a throttled login hit: the `scope` label of
/// `escalator_review_login_throttled_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// Its client address failed too often.
    Address,
    /// All clients together failed too often.
    Global,
}

impl Scope {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Scope::Address => "address",
            Scope::Global => "global",
        }
    }
}

/// The failures of this replica's logins.
#[derive(Debug)]
pub(super) struct Throttle {
    state: std::sync::Mutex<State>,
}

#[derive(Debug)]
struct State {
    addresses: HashMap<IpAddr, Counter>,
    global: Counter,
}

/// The address a limit counts: an IPv6 client controls its whole /64, so that is one address.
fn key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(s.into())
            }
        },
    }
}

impl Throttle {
    pub(super) fn new() -> Self {
        Self {
            state: std::sync::Mutex::new(State {
                addresses: HashMap::new(),
                global: Counter::new(Instant::now()),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a login from `addr` may be tried at `now`: else which limit and how long to
    /// wait.
    pub(super) fn check(&self, addr: IpAddr, now: Instant) -> Result<(), (Scope, Duration)> {
        let state = self.lock();
        if let Some(wait) = state.addresses.get(&key(addr)).and_then(|c| c.wait(now)) {
            return Err((Scope::Address, wait));
        }
        if let Some(wait) = state.global.wait(now) {
            return Err((Scope::Global, wait));
        }
        Ok(())
    }

    /// Counts a failed login from `addr` at `now`.
    pub(super) fn failed(&self, addr: IpAddr, now: Instant) {
        let mut state = self.lock();
        state.global.fail(now, GLOBAL);
        let addr = key(addr);
        if !state.addresses.contains_key(&addr) && state.addresses.len() >= MAX_ADDRESSES {
            state.addresses.retain(|_, c| !c.stale(now, PER_ADDRESS));
        }
        if state.addresses.contains_key(&addr) || state.addresses.len() < MAX_ADDRESSES {
            state
                .addresses
                .entry(addr)
                .or_insert_with(|| Counter::new(now))
                .fail(now, PER_ADDRESS);
        }
    }

    /// Clears the failures of `addr` after a successful login.
    pub(super) fn succeeded(&self, addr: IpAddr) {
        self.lock().addresses.remove(&key(addr));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn failures_from_one_address_wait_exponentially_and_a_success_clears_them() {
        let t = Throttle::new();
        let now = Instant::now();
        let a = ip("203.0.113.7");
        for _ in 0..5 {
            assert_eq!(t.check(a, now), Ok(()));
            t.failed(a, now);
        }
        assert_eq!(t.check(a, now), Ok(()), "five failures are free");
        let mut expected = 1;
        for _ in 0..12 {
            t.failed(a, now);
            let (scope, wait) = t.check(a, now).unwrap_err();
            assert_eq!(
                (scope, wait),
                (Scope::Address, Duration::from_secs(expected))
            );
            expected = (expected * 2).min(900);
        }
        assert_eq!(expected, 900, "capped at 15 minutes");
        // Another address is not held up; the wait runs out; a success clears it.
        assert_eq!(t.check(ip("203.0.113.8"), now), Ok(()));
        assert_eq!(t.check(a, now + Duration::from_secs(901)), Ok(()));
        t.succeeded(a);
        assert_eq!(t.check(a, now), Ok(()));
        // Failures long ago are forgotten.
        let later = now + Duration::from_secs(7200);
        for _ in 0..5 {
            t.failed(a, later);
        }
        assert_eq!(t.check(a, later), Ok(()));
    }

    #[test]
    fn many_addresses_together_hit_the_global_limit() {
        let t = Throttle::new();
        let now = Instant::now();
        for i in 0..50u32 {
            let a = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            t.failed(a, now);
        }
        let fresh = ip("198.51.100.1");
        assert_eq!(t.check(fresh, now), Ok(()));
        t.failed(ip("10.9.9.9"), now);
        assert_eq!(
            t.check(fresh, now),
            Err((Scope::Global, Duration::from_secs(1)))
        );
        for _ in 0..10 {
            t.failed(ip("10.9.9.9"), now);
        }
        assert_eq!(
            t.check(fresh, now),
            Err((Scope::Global, Duration::from_secs(60))),
            "capped at a minute"
        );
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64() {
        assert_eq!(key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        let t = Throttle::new();
        let now = Instant::now();
        for i in 0..6u16 {
            t.failed(IpAddr::V6([0x2001, 0xdb8, 0, 1, i, 0, 0, 1].into()), now);
        }
        assert!(t.check(ip("2001:db8:0:1:ffff::9"), now).is_err());
    }
}
