//! The physical-server daemon.
//!
//! Holds its TOTP secret from the one-time enrolment bundle (`dirbroker ps
//! add`) and nothing else. Its data center connects to it; after the TOTP
//! mutual authentication (`DC_PS_Auth_Request` / `DC_PS_Auth_Response`) and
//! `E_TOTP(SK)` it either sends a VM image to the destination server or
//! receives one on a fresh data port (`VM_Data_Tran`), then reports.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dirbroker_proto::otp::Algorithm;
use dirbroker_proto::otp::{SecretFormat, parse_secret};
use dirbroker_proto::stream::{self, Header, TransferKey};
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use zeroize::Zeroizing;

use crate::migration::MigrationError;
use crate::migration::messages::*;
use crate::migration::operation::{self, StepGuard, TotpKey};
use crate::wire::{self, Message};

/// How the daemon is started.
#[derive(Debug, Clone)]
pub struct PsOptions {
    /// The enrolment bundle written by `dirbroker ps add`.
    pub bundle: PathBuf,
    /// Control address (the data center connects here).
    pub listen: String,
    /// Directory of VM images (sent from, received into).
    pub images: PathBuf,
    /// Address the data port binds to and is announced as (default: the
    /// control address's IP; required when that is unspecified, 0.0.0.0).
    pub data_host: Option<String>,
    pub timeout: Duration,
    pub chunk_size: u32,
}

/// How long the receiving server waits for the sender to connect: the
/// source DC may first wait up to a TOTP period for a fresh step.
const DATA_ACCEPT_TIMEOUT: Duration = Duration::from_secs(120);
/// A data connection silent this long is abandoned (nothing is committed).
const DATA_IO_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
struct Bundle {
    server_id: String,
    datacenter: String,
    algorithm: String,
    period: u64,
    secret_base32: String,
}

fn local(e: impl std::fmt::Display) -> MigrationError {
    MigrationError::Local(e.to_string())
}

/// Reads an enrolment bundle (refusing one that others can read).
pub fn load_bundle(path: &Path) -> Result<TotpKey, MigrationError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| local(format!("{}: {e}", path.display())))?;
    if meta.mode() & 0o077 != 0 {
        return Err(local(format!("{}: others may read this secret; chmod 600 it", path.display())));
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| local(format!("{}: {e}", path.display())))?);
    let b: Bundle = toml::from_str(&text).map_err(|e| local(format!("{}: {e}", path.display())))?;
    let algorithm = Algorithm::parse(&b.algorithm)
        .ok_or_else(|| local(format!("{}: unknown algorithm {:?}", path.display(), b.algorithm)))?;
    let secret = parse_secret(&b.secret_base32, SecretFormat::Base32)
        .map_err(|e| local(format!("{}: secret_base32: {e}", path.display())))?;
    TotpKey::new(&b.datacenter, &b.server_id, algorithm, b.period, secret)
}

/// Temporary files a killed receiver left behind (the stream writes into a
/// hidden temporary file and renames it only when the image verified).
fn remove_stale_parts(images: &Path) {
    let Ok(entries) = std::fs::read_dir(images) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(stream::TEMP_PREFIX) {
            match std::fs::remove_file(e.path()) {
                Ok(()) => tracing::info!("removed {} left by an interrupted transfer", e.path().display()),
                Err(err) => tracing::warn!("cannot remove {}: {err}", e.path().display()),
            }
        }
    }
}

/// A VM image name: one plain file name inside the images directory.
fn image_path(images: &Path, vm: &str) -> Result<PathBuf, MigrationError> {
    let plain = !vm.is_empty()
        && vm.len() <= 255
        && vm != "."
        && vm != ".."
        && !vm.starts_with('.')
        && !vm.chars().any(|c| c == '/' || c == '\\' || c.is_control());
    if !plain {
        return Err(MigrationError::Mismatch {
            what: SkDelivery::NAME,
            detail: format!("{vm:?} is not a plain image name"),
        });
    }
    Ok(images.join(vm))
}

struct Ps {
    key: TotpKey,
    guard: Mutex<StepGuard>,
    images: PathBuf,
    data_host: String,
    timeout: Duration,
    chunk_size: u32,
}

/// Loads the bundle, binds, and serves until stopped.
pub async fn run(opts: PsOptions) -> Result<(), MigrationError> {
    let key = load_bundle(&opts.bundle)?;
    // Refuse a chunk size no receiver would accept now, not at the first transfer.
    Header::new([0; 16], opts.chunk_size, 0, "check")
        .map_err(|e| local(format!("--chunk-kib {}: {e}", opts.chunk_size / 1024)))?;
    let listener =
        TcpListener::bind(&opts.listen).await.map_err(|e| local(format!("listen on {}: {e}", opts.listen)))?;
    let addr = listener.local_addr().map_err(local)?;
    let data_host = match opts.data_host {
        Some(h) => h,
        None if addr.ip().is_unspecified() => {
            return Err(local(format!("listening on {addr}: give --data-host, the address the sender can reach")));
        }
        None => addr.ip().to_string(),
    };
    remove_stale_parts(&opts.images);
    tracing::info!(server = %key.pid, dc = %key.did, "physical server listening on {addr}");
    println!("listening on {addr}");
    let ps = Arc::new(Ps {
        key,
        guard: Mutex::new(StepGuard::default()),
        images: opts.images,
        data_host,
        timeout: opts.timeout,
        chunk_size: opts.chunk_size,
    });
    loop {
        let (tcp, peer) = listener.accept().await.map_err(local)?;
        let ps = ps.clone();
        tokio::spawn(async move {
            if let Err(e) = ps.session(tcp).await {
                if e.fault().blames_peer() {
                    tracing::warn!(%peer, security = true, "refused: {e}");
                } else {
                    tracing::info!(%peer, "session ended: {e}");
                }
            }
        });
    }
}

impl Ps {
    async fn session(&self, mut tcp: TcpStream) -> Result<(), MigrationError> {
        let _ = tcp.set_nodelay(true);
        let result = self.session_inner(&mut tcp).await;
        if let Err(e) = &result {
            wire::refuse(&mut tcp, e.fault(), e).await;
        }
        result
    }

    async fn session_inner(&self, tcp: &mut TcpStream) -> Result<(), MigrationError> {
        let req: DcPsAuthRequest = wire::recv(tcp, kind_name, self.timeout).await?;
        let (resp, channel) = {
            let mut guard = self.guard.lock().map_err(|_| local("step guard poisoned"))?;
            operation::receive_dc_ps_auth_request(
                &self.key,
                &req,
                &mut guard,
                dirbroker_service::clock::unix_time().as_secs(),
                &mut dirbroker_service::clock::rng(),
            )?
        };
        wire::send(tcp, &resp).await?;
        let delivery: SkDelivery = wire::recv(tcp, kind_name, self.timeout).await?;
        let (body, job) = channel.receive_sk(&delivery)?;
        tracing::info!(dc = %self.key.did, job = ?body.job, "data center authenticated (TOTP); session key received");
        let key = TransferKey::derive(&body.sk, &body.migration_id).map_err(|e| local(e.to_string()))?;
        let (outcome, running) = match &body.job {
            Job::Receive { vm } => {
                let dest = image_path(&self.images, vm)?;
                if dest.symlink_metadata().is_ok() {
                    return Err(MigrationError::Refused(format!("image {vm} exists already on {}", self.key.pid)));
                }
                let data = TcpListener::bind((self.data_host.as_str(), 0)).await.map_err(local)?;
                let addr = data.local_addr().map_err(local)?;
                let (ready, running) = job.ready(&PsReadyBody { data_addr: Some(addr.to_string()) })?;
                wire::send(tcp, &ready).await?;
                let (conn, from) = tokio::time::timeout(DATA_ACCEPT_TIMEOUT.max(self.timeout), data.accept())
                    .await
                    .map_err(|_| local("no sender connected to the data port in time"))?
                    .map_err(local)?;
                tracing::info!(%from, "VM_Data_Tran: receiving {vm}");
                let conn = conn.into_std().map_err(local)?;
                let id = body.migration_id;
                let name = vm.clone();
                let outcome = tokio::task::spawn_blocking(move || {
                    conn.set_nonblocking(false).map_err(|e| e.to_string())?;
                    conn.set_read_timeout(Some(DATA_IO_TIMEOUT)).map_err(|e| e.to_string())?;
                    let started = Instant::now();
                    let mut bar = Progress::new("receiving", &name);
                    let r = stream::receive(&key, &id, conn, &dest, &mut |n| bar.update(n))
                        .map_err(|e| e.fault().for_peer(&e))?;
                    bar.finish(r.bytes, started.elapsed());
                    Ok::<_, String>(Transferred { bytes: r.bytes, blake3: r.blake3 })
                })
                .await
                .map_err(local)?;
                (outcome, running)
            }
            Job::Send { vm, to } => {
                let src = image_path(&self.images, vm)?;
                let file = std::fs::File::open(&src).map_err(|e| local(format!("{}: {e}", src.display())))?;
                let len = file.metadata().map_err(local)?.len();
                let (ready, running) = job.ready(&PsReadyBody { data_addr: None })?;
                wire::send(tcp, &ready).await?;
                let conn = TcpStream::connect(to).await.map_err(|e| local(format!("cannot reach {to}: {e}")))?;
                let conn = conn.into_std().map_err(local)?;
                let header =
                    Header::new(body.migration_id, self.chunk_size, len, vm).map_err(|e| local(e.to_string()))?;
                let name = vm.clone();
                let outcome = tokio::task::spawn_blocking(move || {
                    conn.set_nonblocking(false).map_err(|e| e.to_string())?;
                    conn.set_write_timeout(Some(DATA_IO_TIMEOUT)).map_err(|e| e.to_string())?;
                    let started = Instant::now();
                    let mut bar = Progress::new("sending", &name);
                    let s = stream::send(&key, &header, file, &conn, &mut |n| bar.update(n))
                        .map_err(|e| e.fault().for_peer(&e))?;
                    conn.shutdown(std::net::Shutdown::Write).map_err(|e| e.to_string())?;
                    bar.finish(s.bytes, started.elapsed());
                    Ok::<_, String>(Transferred { bytes: s.bytes, blake3: s.blake3 })
                })
                .await
                .map_err(local)?;
                (outcome, running)
            }
        };
        if let Err(e) = &outcome {
            tracing::warn!("VM_Data_Tran failed: {e}");
        }
        wire::send(tcp, &running.report(&TransferReportBody { outcome })?).await?;
        Ok(())
    }
}

/// Progress on the terminal (a bar with throughput) or, when stderr is not
/// a terminal, a line per quarter.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    what: &'static str,
    name: String,
    next_line: u64,
}

impl Progress {
    fn new(what: &'static str, name: &str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new_spinner();
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{msg} {bytes} ({binary_bytes_per_sec}) {elapsed_precise}")
            {
                b.set_style(style);
            }
            b.set_message(format!("{what} {name}"));
            b
        });
        Progress { bar, what, name: name.to_string(), next_line: 256 << 20 }
    }

    fn update(&mut self, bytes: u64) {
        match &self.bar {
            Some(b) => b.set_position(bytes),
            None if bytes >= self.next_line => {
                eprintln!("{} {}: {} MiB", self.what, self.name, bytes >> 20);
                self.next_line += 256 << 20;
            }
            None => {}
        }
    }

    fn finish(&self, bytes: u64, took: Duration) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        let secs = took.as_secs_f64().max(1e-9);
        eprintln!(
            "{} {}: {bytes} bytes in {:.2} s ({:.0} MB/s)",
            self.what,
            self.name,
            secs,
            bytes as f64 / secs / 1e6
        );
    }
}
