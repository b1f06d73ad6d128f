//! What stands in front of the login's proof check (audit F1/F5, issue #13
//! item 2): the replay cache of login proofs, the per-user and per-source
//! limits on failed logins, and the count of proof verifications.
//!
//! ```text
//! request ─► cheap checks (audience, skew, widths; no group operation)
//!         ─► replay cache: (ID_c, nonce, ts) seen? refuse : remember   (lock held only here)
//!         ─► limits: source and user each under their failures/minute? (counted up front)
//!         ─► Schnorr proof (two full-length exponentiations)           (no lock)
//!         ─► OTP, for users with a token
//!         ─► success: the limits give the attempt back
//! ```
//!
//! Every proof enters the replay cache before it is verified, so a captured
//! or bogus body replayed within the skew window costs a hash and a map
//! lookup, never an exponentiation. An attempt counts against both limits
//! until it succeeds: failures and attempts in flight count, successes do
//! not.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dirbroker_proto::sso::error::SsoError;
use dirbroker_proto::sso::preauth::{PreAuthProof, remember_proof};
use dirbroker_proto::sso::replay::ReplayCache;
use dirbroker_proto::sso::tickets::{ClientEntry, LoginRequest, TicketIssuer};
use dirbroker_service::rate::RateLimit;

/// How long the failure limits count (a fixed window per key).
pub const WINDOW: Duration = Duration::from_secs(60);
/// Keys each limit may remember (a flood of distinct keys resets it).
const MAX_KEYS: usize = 100_000;

/// Why a login was refused before its proof was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The proof was seen before (verified or not).
    Replay,
    /// Too many failures from this source or for this user: wait.
    Backoff(Duration),
    /// The replay cache's lock is poisoned (a bug).
    Internal,
}

/// One login attempt that passed the gate and is counted against the limits
/// until [`LoginGate::succeeded`] gives it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    source: IpAddr,
    user: Option<String>,
}

/// The login gate of one broker process.
#[derive(Debug)]
pub struct LoginGate {
    cache: Mutex<ReplayCache>,
    per_source: RateLimit<IpAddr>,
    per_user: RateLimit<String>,
    verifications: AtomicU64,
}

/// The source a limit counts: the address, or its /64 for IPv6 (one host
/// usually holds a whole /64). IPv4-mapped addresses count as IPv4.
pub fn source_of(addr: Option<SocketAddr>) -> IpAddr {
    match addr.map(|a| a.ip()) {
        None => IpAddr::from([0u8; 4]),
        Some(IpAddr::V4(v4)) => IpAddr::V4(v4),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl LoginGate {
    /// A gate allowing `per_user` and `per_source` failed logins per minute.
    pub fn new(per_user: u32, per_source: u32) -> LoginGate {
        LoginGate {
            cache: Mutex::new(ReplayCache::new()),
            per_source: RateLimit::new(per_source.max(1), WINDOW, MAX_KEYS),
            per_user: RateLimit::new(per_user.max(1), WINDOW, MAX_KEYS),
            verifications: AtomicU64::new(0),
        }
    }

    /// Remembers `proof` (its cheap checks passed) and counts the attempt
    /// against the limits of `source` and, for a named login, `user`. The
    /// replay cache's lock is held for the map lookup and insert only.
    pub fn admit(
        &self,
        proof: &PreAuthProof,
        source: IpAddr,
        user: Option<&str>,
        now: i64,
        clock: Instant,
    ) -> Result<Admission, Refusal> {
        {
            let mut cache = self.cache.lock().map_err(|_| Refusal::Internal)?;
            remember_proof(proof, now, &mut cache).map_err(|_| Refusal::Replay)?;
        }
        self.per_source.check(&source, clock).map_err(Refusal::Backoff)?;
        if let Some(u) = user {
            self.per_user.check(&u.to_owned(), clock).map_err(Refusal::Backoff)?;
        }
        Ok(Admission { source, user: user.map(str::to_owned) })
    }

    /// Counts one proof verification (the expensive step) about to run.
    pub fn verifying(&self) {
        self.verifications.fetch_add(1, Ordering::Relaxed);
    }

    /// Proof verifications started by this process.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// The login of `a` succeeded (every factor proven): it does not count
    /// as a failure.
    pub fn succeeded(&self, a: &Admission) {
        self.per_source.refund(&a.source);
        if let Some(u) = &a.user {
            self.per_user.refund(u);
        }
    }

    /// An anonymous login through the gate, all but the cheap checks, which
    /// the caller ran ([`TicketIssuer::precheck_anonymous_login`]): replay
    /// cache, source limit, proof. CPU-bound: run it off the async workers.
    pub fn anonymous_login(
        &self,
        issuer: &TicketIssuer,
        req: &LoginRequest,
        source: IpAddr,
        now: i64,
        clock: Instant,
    ) -> Result<ClientEntry, AnonymousRefusal> {
        let p_anon = issuer.precheck_anonymous_login(req, now).map_err(AnonymousRefusal::Proof)?;
        let admission = self.admit(&req.proof, source, None, now, clock).map_err(AnonymousRefusal::Gate)?;
        self.verifying();
        let entry = issuer.verify_anonymous_login(&p_anon, req).map_err(AnonymousRefusal::Proof)?;
        self.succeeded(&admission);
        Ok(entry)
    }

    #[cfg(test)]
    fn cache_is_free(&self) -> bool {
        self.cache.try_lock().is_ok()
    }
}

/// Why [`LoginGate::anonymous_login`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnonymousRefusal {
    Gate(Refusal),
    Proof(SsoError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use dirbroker_proto::sso::primitives::Ed25519Key;
    use dirbroker_proto::sso::session::ClientCredential;
    use rand::SeedableRng as _;

    const T0: i64 = 1_800_000_000;
    const BROKER: &str = "dirbroker";

    fn issuer() -> TicketIssuer {
        TicketIssuer::new(BROKER, Ed25519Key::from_seed([7; 32]), &[9; 32]).unwrap()
    }

    fn rng(seed: u64) -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(seed)
    }

    fn here() -> IpAddr {
        IpAddr::from([192, 0, 2, 1])
    }

    /// Audit F1: one bogus anonymous login body sent 100 times costs one
    /// proof verification; the other 99 copies are refused as replays.
    #[test]
    fn a_replayed_bogus_login_costs_one_verification() {
        let (issuer, gate, mut rng) = (issuer(), LoginGate::new(5, 1000), rng(1));
        let anon = ClientCredential::anonymous(&mut rng).unwrap();
        let mut bogus = anon.login_request(BROKER, T0, &mut rng).unwrap();
        let last = bogus.proof.s.0.len() - 1;
        bogus.proof.s.0[last] ^= 1;
        let clock = Instant::now();
        let first = gate.anonymous_login(&issuer, &bogus, here(), T0, clock).unwrap_err();
        assert_eq!(first, AnonymousRefusal::Proof(SsoError::ProofInvalid));
        for i in 1..100 {
            let again = gate.anonymous_login(&issuer, &bogus, here(), T0 + i % 300, clock).unwrap_err();
            assert_eq!(again, AnonymousRefusal::Gate(Refusal::Replay));
        }
        assert_eq!(gate.verifications(), 1);
        // The genuine body is not stalled by the replays.
        let good = anon.login_request(BROKER, T0, &mut rng).unwrap();
        assert!(gate.anonymous_login(&issuer, &good, here(), T0, clock).is_ok());
        assert_eq!(gate.verifications(), 2);
    }

    /// Fresh bogus bodies (new nonces) each cost a verification, but only
    /// `per_source` of them a minute from one source; another source and a
    /// later window are not held back.
    #[test]
    fn fresh_bogus_logins_from_one_source_are_backed_off() {
        let (issuer, gate, mut rng) = (issuer(), LoginGate::new(5, 3), rng(2));
        let anon = ClientCredential::anonymous(&mut rng).unwrap();
        let clock = Instant::now();
        let bogus = |rng: &mut rand::rngs::StdRng| {
            let mut r = anon.login_request(BROKER, T0, rng).unwrap();
            r.proof.s.0[0] ^= 1;
            r
        };
        for _ in 0..3 {
            let r = gate.anonymous_login(&issuer, &bogus(&mut rng), here(), T0, clock).unwrap_err();
            assert_eq!(r, AnonymousRefusal::Proof(SsoError::ProofInvalid));
        }
        let r = gate.anonymous_login(&issuer, &bogus(&mut rng), here(), T0, clock);
        assert!(matches!(r, Err(AnonymousRefusal::Gate(Refusal::Backoff(_)))), "{r:?}");
        assert_eq!(gate.verifications(), 3, "a backed-off attempt costs no verification");
        let elsewhere = IpAddr::from([198, 51, 100, 7]);
        let good = anon.login_request(BROKER, T0, &mut rng).unwrap();
        assert!(gate.anonymous_login(&issuer, &good, elsewhere, T0, clock).is_ok());
        let good = anon.login_request(BROKER, T0, &mut rng).unwrap();
        assert!(gate.anonymous_login(&issuer, &good, here(), T0, clock + WINDOW).is_ok());
    }

    /// Per-user back-off: after K failed logins for alice, alice is refused
    /// before any verification while bob (same source) is admitted; alice's
    /// successes do not count.
    #[test]
    fn failures_for_one_user_do_not_hold_back_another() {
        let gate = LoginGate::new(3, 1000);
        let (clock, mut rng) = (Instant::now(), rng(3));
        let proof = |rng: &mut rand::rngs::StdRng, uid: &str| {
            let cred = ClientCredential::anonymous(rng).unwrap();
            let mut r = cred.login_request(BROKER, T0, rng).unwrap();
            r.proof.id_c = uid.into();
            r.proof
        };
        let ok = gate.admit(&proof(&mut rng, "alice"), here(), Some("alice"), T0, clock).unwrap();
        gate.succeeded(&ok);
        for _ in 0..3 {
            gate.admit(&proof(&mut rng, "alice"), here(), Some("alice"), T0, clock).unwrap();
        }
        let r = gate.admit(&proof(&mut rng, "alice"), here(), Some("alice"), T0, clock);
        assert!(matches!(r, Err(Refusal::Backoff(_))), "{r:?}");
        assert!(gate.admit(&proof(&mut rng, "bob"), here(), Some("bob"), T0, clock).is_ok());
        assert!(gate.admit(&proof(&mut rng, "alice"), here(), Some("alice"), T0, clock + WINDOW).is_ok());
    }

    /// Logins are not serialised: two are in flight at once, each verified
    /// on its own thread while the other is between admission and result,
    /// and the replay cache's lock is free the whole time.
    #[test]
    fn two_logins_are_verified_at_once_outside_the_lock() {
        let (issuer, gate, mut rng) = (issuer(), LoginGate::new(5, 1000), rng(4));
        let clock = Instant::now();
        let (a, b) = (ClientCredential::anonymous(&mut rng).unwrap(), ClientCredential::anonymous(&mut rng).unwrap());
        let (ra, rb) = (a.login_request(BROKER, T0, &mut rng).unwrap(), b.login_request(BROKER, T0, &mut rng).unwrap());
        let pa = issuer.precheck_anonymous_login(&ra, T0).unwrap();
        let pb = issuer.precheck_anonymous_login(&rb, T0).unwrap();
        let adm_a = gate.admit(&ra.proof, here(), None, T0, clock).unwrap();
        let adm_b = gate.admit(&rb.proof, here(), None, T0, clock).unwrap();
        assert!(gate.cache_is_free(), "no lock is held between admission and verification");
        // Both verifications run concurrently; each waits at the barrier
        // until the other has started, which a lock around them would make
        // impossible (the test would hang, not pass).
        let barrier = std::sync::Barrier::new(2);
        let (ea, eb) = std::thread::scope(|s| {
            let ta = s.spawn(|| {
                barrier.wait();
                assert!(gate.cache_is_free());
                issuer.verify_anonymous_login(&pa, &ra)
            });
            let tb = s.spawn(|| {
                barrier.wait();
                issuer.verify_anonymous_login(&pb, &rb)
            });
            (ta.join().unwrap(), tb.join().unwrap())
        });
        assert!(ea.is_ok() && eb.is_ok());
        gate.succeeded(&adm_a);
        gate.succeeded(&adm_b);
        assert!(gate.cache_is_free());
    }

    #[test]
    fn an_ipv6_slash_64_is_one_source() {
        let a: SocketAddr = "[2001:db8:1:2:aaaa::1]:5000".parse().unwrap();
        let b: SocketAddr = "[2001:db8:1:2:bbbb::9]:6000".parse().unwrap();
        assert_eq!(source_of(Some(a)), source_of(Some(b)));
        let m: SocketAddr = "[::ffff:192.0.2.1]:1".parse().unwrap();
        assert_eq!(source_of(Some(m)), here());
    }
}
