//! Throughput of `VM_Data_Tran` over loopback TCP.
//!
//! ```text
//! cargo run --release --example stream_bench -- [SIZE_MIB=1024] [CHUNK_KIB=1024] [DIR=$TMPDIR]
//! ```
//!
//! Prints the building blocks first (SHA-256 from sha2 and from aws-lc,
//! BLAKE3, AES-256-GCM seal, all single core), then the sender alone into
//! `io::sink` and the receiver alone from the stream in memory (each with
//! its CPU per GB; run under `taskset -c 0` for one core), then the whole
//! transfer: a receiver thread on 127.0.0.1
//! commits into DIR while the sender streams the file from DIR. MB = 10^6
//! bytes; the end-to-end time includes the final fsync and rename.

use std::io::{self, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Instant;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use dirbroker_proto::stream::{Header, TransferKey, random_transfer_id, receive, send};
use rand::RngCore;
use sha2::Digest;

/// User + system CPU seconds of this process so far (all threads), from /proc/self/stat.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the ")" that closes the command name; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let ticks: u64 = after.split_whitespace().skip(11).take(2).filter_map(|f| f.parse::<u64>().ok()).sum();
    ticks as f64 / 100.0
}

fn mb_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size_mib: u64 = args.first().map(|s| s.parse()).transpose()?.unwrap_or(1024);
    let chunk_kib: u32 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(1024);
    let dir = match args.get(2) {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    // A 4th argument "e2e" skips the building blocks and the sender-alone run (for profiling).
    let e2e_only = args.get(3).is_some_and(|a| a == "e2e");
    let size = size_mib << 20;
    let chunk = chunk_kib << 10;
    println!("size_bytes={size} chunk_bytes={chunk} dir={}", dir.path().display());

    if !e2e_only {
        building_blocks(chunk)?;
    }

    // The image.
    let image = dir.path().join("image.raw");
    {
        let mut f = io::BufWriter::with_capacity(4 << 20, std::fs::File::create(&image)?);
        let mut buf = vec![0u8; 4 << 20];
        let mut left = size;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            let part = buf.get_mut(..n).ok_or("buffer")?;
            dirbroker_proto::edge::rng().fill_bytes(part);
            f.write_all(part)?;
            left -= n as u64;
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }

    let session_key = [0x5au8; 32];

    if !e2e_only {
        sender_only(&session_key, &image, chunk, size)?;
        receiver_only(&session_key, &image, chunk, size, dir.path())?;
    }

    // End to end over loopback TCP.
    let id = random_transfer_id(&mut dirbroker_proto::edge::rng());
    let header = Header::new(id, chunk, size, "image.raw")?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let dest: PathBuf = dir.path().join("received.raw");
    let cpu0 = cpu_secs();
    let t = Instant::now();
    let (sent, received) = std::thread::scope(|s| {
        let receiver = std::thread::Builder::new().name("receiver".into()).spawn_scoped(s, || -> Result<_, String> {
            let (conn, _) = listener.accept().map_err(|e| e.to_string())?;
            let key = TransferKey::derive(&session_key, &id).map_err(|e| e.to_string())?;
            let mut last_byte = None;
            let summary = receive(&key, &id, &conn, &dest, &mut |n| {
                if n == size {
                    last_byte = Some(Instant::now());
                }
            })
            .map_err(|e| e.to_string())?;
            Ok((summary, last_byte))
        });
        let receiver = match receiver {
            Ok(r) => r,
            Err(e) => return (Err(e.to_string()), Err(String::new())),
        };
        let sender = std::thread::Builder::new().name("sender".into()).spawn_scoped(s, || -> Result<_, String> {
            let conn = TcpStream::connect(addr).map_err(|e| e.to_string())?;
            let key = TransferKey::derive(&session_key, &id).map_err(|e| e.to_string())?;
            let file = std::fs::File::open(&image).map_err(|e| e.to_string())?;
            let sent = send(&key, &header, file, &conn, &mut |_| {}).map_err(|e| e.to_string())?;
            conn.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
            Ok(sent)
        });
        let sent = match sender {
            Ok(h) => h.join().map_err(|_| "sender panicked".to_string()).and_then(|r| r),
            Err(e) => Err(e.to_string()),
        };
        let received = receiver.join().map_err(|_| "receiver panicked".to_string()).and_then(|r| r);
        (sent, received)
    });
    let secs = t.elapsed().as_secs_f64();
    let commit_done = Instant::now();
    let cpu = cpu_secs() - cpu0;
    let (sent, (received, last_byte)) = (sent?, received?);
    if let Some(last) = last_byte {
        println!(
            "last_byte_written_after_s={:.3} commit_s={:.3} (fsync + rename + directory fsync)",
            (last - t).as_secs_f64(),
            (commit_done - last).as_secs_f64()
        );
    }
    assert_eq!(sent.blake3, received.blake3);
    println!("cpu_s_per_gb={:.2} (sender + receiver, user + system)", cpu / (size as f64 / 1e9));
    println!("stream_mb_s={:.0} ({} bytes in {:.3} s)", mb_s(received.bytes, secs), received.bytes, secs);
    Ok(())
}

/// SHA-256 (sha2 and aws-lc), BLAKE3 and AES-256-GCM, single core, on a 64 MiB buffer.
fn building_blocks(chunk: u32) -> Result<(), Box<dyn std::error::Error>> {
    let mut block = vec![0u8; 64 << 20];
    dirbroker_proto::edge::rng().fill_bytes(&mut block);
    let rounds = 8u64;
    let t = Instant::now();
    for _ in 0..rounds {
        let mut h = sha2::Sha256::new();
        for c in block.chunks(chunk as usize) {
            h.update(c);
        }
        std::hint::black_box(h.finalize());
    }
    println!("sha256_sha2_mb_s={:.0}", mb_s(rounds * block.len() as u64, t.elapsed().as_secs_f64()));
    let t = Instant::now();
    for _ in 0..rounds {
        let mut h = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for c in block.chunks(chunk as usize) {
            h.update(c);
        }
        std::hint::black_box(h.finish());
    }
    println!("sha256_awslc_mb_s={:.0}", mb_s(rounds * block.len() as u64, t.elapsed().as_secs_f64()));
    let t = Instant::now();
    for _ in 0..rounds {
        let mut h = blake3::Hasher::new();
        for c in block.chunks(chunk as usize) {
            h.update(c);
        }
        std::hint::black_box(h.finalize());
    }
    println!("blake3_mb_s={:.0}", mb_s(rounds * block.len() as u64, t.elapsed().as_secs_f64()));
    let aead = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).map_err(|_| "key")?);
    let t = Instant::now();
    let mut n = 0u64;
    for _ in 0..rounds {
        for c in block.chunks_mut(chunk as usize) {
            let mut nonce = [0u8; 12];
            if let Some((_, counter)) = nonce.split_last_chunk_mut::<8>() {
                *counter = n.to_be_bytes();
            }
            n += 1;
            let tag = aead
                .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&[0u8; 80]), c)
                .map_err(|_| "seal")?;
            let _ = std::hint::black_box(tag);
        }
    }
    println!("aes256gcm_seal_mb_s={:.0}", mb_s(rounds * block.len() as u64, t.elapsed().as_secs_f64()));
    Ok(())
}

/// The receiver alone: the stream captured in memory first, then received
/// into a file in `dir` (commit included), with its CPU.
fn receiver_only(
    session_key: &[u8; 32],
    image: &std::path::Path,
    chunk: u32,
    size: u64,
    dir: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let id = random_transfer_id(&mut dirbroker_proto::edge::rng());
    let header = Header::new(id, chunk, size, "image.raw")?;
    let mut wire = Vec::with_capacity(usize::try_from(size)? + (64 << 10));
    send(&TransferKey::derive(session_key, &id)?, &header, std::fs::File::open(image)?, &mut wire, &mut |_| {})?;
    let dest = dir.join("receiver-only.raw");
    let cpu0 = cpu_secs();
    let t = Instant::now();
    let got = receive(&TransferKey::derive(session_key, &id)?, &id, &wire[..], &dest, &mut |_| {})?;
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    std::fs::remove_file(&dest)?;
    println!(
        "receiver_only_mb_s={:.0} receiver_only_cpu_s_per_gb={:.2}",
        mb_s(got.bytes, secs),
        cpu / (got.bytes as f64 / 1e9)
    );
    Ok(())
}

/// The sender alone, from the file into `io::sink()`.
fn sender_only(
    session_key: &[u8; 32],
    image: &std::path::Path,
    chunk: u32,
    size: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let id = random_transfer_id(&mut dirbroker_proto::edge::rng());
    let key = TransferKey::derive(session_key, &id)?;
    let header = Header::new(id, chunk, size, "image.raw")?;
    let cpu0 = cpu_secs();
    let t = Instant::now();
    let sent = send(&key, &header, std::fs::File::open(image)?, io::sink(), &mut |_| {})?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "sender_only_mb_s={:.0} sender_only_cpu_s_per_gb={:.2}",
        mb_s(sent.bytes, secs),
        (cpu_secs() - cpu0) / (sent.bytes as f64 / 1e9)
    );
    Ok(())
}
