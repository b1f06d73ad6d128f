//! CPU cost of one side of a SPEKE handshake in RFC 3526 group 14:
//! `start` + `receive` + `my_tag` + `confirm`, single thread, in thread CPU
//! time. `speke_side_ms` is the steady state of a data-center daemon, which
//! prepares each peer's password once (`prepare_once_ms`, a fixed-base
//! table for the generator) and reuses it; `speke_side_unprepared_ms` is a
//! handshake from scratch.
//!
//! Run with `cargo run --release --example speke_cpu [runs]`; compare with
//! `openssl speed -seconds 3 ffdh2048` (one SPEKE side does two 2048-bit
//! exponentiations with 256-bit exponents, plus hashing and checks).

use std::time::Duration;

use dirbroker_proto::group::{Element, Exponent, Group};
use dirbroker_proto::speke::{PreparedPassword, Speke, SpekeError};

const PASSWORD: &[u8] = b"correct horse battery staple";
const ALICE: &[u8] = b"DC-SEOUL-1";
const BOB: &[u8] = b"DC-BUSAN-2";

/// Times Alice's four calls; Bob's work happens outside the clock.
/// This thread's CPU time: what one side of the handshake costs, whatever
/// else the machine runs (`openssl speed` also counts CPU time by default).
#[derive(Clone, Copy)]
struct Cpu(Duration);

impl Cpu {
    fn now() -> Cpu {
        match nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID) {
            Ok(t) => Cpu(Duration::new(t.tv_sec().try_into().unwrap_or(0), t.tv_nsec().try_into().unwrap_or(0))),
            Err(_) => Cpu(Duration::ZERO),
        }
    }
    fn elapsed(self) -> Duration {
        Cpu::now().0.saturating_sub(self.0)
    }
}

fn one_side(
    group: &Group,
    prepared: Option<&PreparedPassword<'_>>,
    rng: &mut rand::rngs::ThreadRng,
) -> Result<Duration, SpekeError> {
    let t0 = Cpu::now();
    let (alice, x) = match prepared {
        Some(p) => Speke::start_prepared(p, ALICE, BOB, rng)?,
        None => Speke::start(group, PASSWORD, ALICE, BOB, rng)?,
    };
    let mut spent = t0.elapsed();

    let (bob, y) = Speke::start(group, PASSWORD, BOB, ALICE, rng)?;
    let bob = bob.receive(x.as_bytes())?;
    let bob_tag = bob.my_tag();

    let t1 = Cpu::now();
    let alice = alice.receive(y.as_bytes())?;
    let alice_tag = alice.my_tag();
    let key = alice.confirm(&bob_tag)?;
    spent += t1.elapsed();

    let bob_key = bob.confirm(&alice_tag)?;
    if key.expose() != bob_key.expose() {
        return Err(SpekeError::KeyConfirmationFailed);
    }
    Ok(spent)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(sorted: &[Duration]) -> Duration {
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn time_op(runs: u32, mut op: impl FnMut()) -> f64 {
    let t = Cpu::now();
    for _ in 0..runs {
        op();
    }
    ms(t.elapsed()) / f64::from(runs)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(200);
    let group = Group::modp2048();
    let mut rng = dirbroker_proto::edge::rng();

    // Warm up (LazyLock, caches, allocator).
    for _ in 0..10 {
        one_side(group, None, &mut rng)?;
    }
    // A data center prepares each peer's password once, at start.
    let t = Cpu::now();
    let prepared = Speke::prepare(group, PASSWORD)?;
    let prepare_ms = ms(t.elapsed());
    let (mut samples, mut plain) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        samples.push(one_side(group, Some(&prepared), &mut rng)?);
        plain.push(one_side(group, None, &mut rng)?);
    }
    samples.sort();
    plain.sort();
    let total: Duration = samples.iter().sum();
    let mean = ms(total) / samples.len().max(1) as f64;

    // Breakdown of the main costs.
    let generator = group.hash_to_element(b"bench", PASSWORD);
    let x = Exponent::random_short(group, &mut rng);
    let x_full = Exponent::random_full(group, &mut rng);
    let value: Element = group.exp(&generator, &x)?;
    let bytes = value.to_bytes();
    let exp_short = time_op(200, || {
        let _ = std::hint::black_box(group.exp(&value, &x));
    });
    let exp_full = time_op(20, || {
        let _ = std::hint::black_box(group.exp(&value, &x_full));
    });
    let decode = time_op(200, || {
        let _ = std::hint::black_box(group.decode(&bytes));
    });
    let euler = time_op(20, || {
        std::hint::black_box(value.value().modpow(group.q(), group.p()));
    });
    let h2g = time_op(200, || {
        std::hint::black_box(group.hash_to_element(b"bench", PASSWORD));
    });

    println!("runs={runs}");
    println!("prepare_once_ms={prepare_ms:.3}");
    println!("speke_side_unprepared_ms={:.3}", ms(median(&plain)));
    println!("speke_side_ms={:.3}", ms(median(&samples)));
    println!("speke_side_mean_ms={mean:.3}");
    println!("exp_short_ms={exp_short:.3}");
    println!("exp_full_q_ms={exp_full:.3}");
    println!("decode_jacobi_ms={decode:.3}");
    println!("euler_v_pow_q_ms={euler:.3}");
    println!("hash_to_element_ms={h2g:.3}");
    Ok(())
}
