//! An example Kerberized service (seed 002 stages 6–7): a tiny key–value
//! store that trusts the broker's tickets.
//!
//! ```text
//! start: key file (r_k, ID_k) ─ JWKS from the broker (GET /.well-known/jwks.json, broker CA)
//! per connection (plain TCP; frames of dirbroker_proto::sso::service_frame):
//!   ServiceRequest ─▶ ServiceVerifier::authorize (ticket, K_k,e, V_ck, skew, replay cache)
//!                  ─▶ level policy: read ≥ 1, write ≥ 2, admin = 4 (level::require_level)
//!   ◀─ {"reply": ServiceReply}  (AP-REP with the answer, under C_ck)   or   {"error": "…"}
//! ```
//!
//! TLS is not needed for the protocol's guarantees: V_ck is sealed under
//! C_ck, the reply too, and the replay cache refuses a captured request.
//! Requests: `read KEY`, `write KEY VALUE`, `admin stats`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use dirbroker_proto::sso::level::{Level, require_level};
use dirbroker_proto::sso::replay::ReplayCache;
use dirbroker_proto::sso::service_frame::{FrameError, ServiceAnswer};
use dirbroker_proto::sso::session::{ServiceRequest, ServiceVerifier};
use dirbroker_proto::sso::tickets::{Jwks, ServiceKeyFile};
use dirbroker_service::accept::{Limits, LogLimit, Sources};
use dirbroker_service::frame;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

/// How the example service is started.
#[derive(Debug, Clone)]
pub struct Options {
    pub key_file: PathBuf,
    pub service_id: String,
    pub brokers: Vec<String>,
    pub ca: PathBuf,
    pub listen: String,
    pub issuer: String,
    /// Refuse every authenticator for one skew interval after start
    /// (RFC 4120 §3.2.3: a restarted service has lost its replay cache).
    pub restart_window: bool,
}

struct Shared {
    verifier: ServiceVerifier,
    cache: Mutex<ReplayCache>,
    store: Mutex<HashMap<String, String>>,
    clock_offset: i64,
}

fn now(offset: i64) -> i64 {
    let t =
        dirbroker_service::clock::system_now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    i64::try_from(t).unwrap_or(i64::MAX).saturating_add(offset)
}

/// A clock offset for tests, honoured only in debug builds (so a test can
/// stand past a ticket's expiry without sleeping); release builds ignore it.
fn clock_offset() -> i64 {
    if cfg!(debug_assertions) {
        std::env::var("DIRBROKER_INSECURE_TEST_CLOCK_OFFSET_S").ok().and_then(|v| v.parse().ok()).unwrap_or(0)
    } else {
        0
    }
}

/// The broker's JWKS, from a server that must hold a broker certificate of
/// the CA (the keys that sign tickets: another kind's server for the
/// broker's host name must not be able to hand out its own).
async fn fetch_jwks(brokers: &[String], ca: &PathBuf) -> Result<Jwks, String> {
    let pem = std::fs::read(ca).map_err(|e| format!("--ca {}: {e}", ca.display()))?;
    let client = dirbroker_service::client::ApiClient::trusting(
        brokers,
        &pem,
        dirbroker_service::holder::CertKind::Broker,
        std::time::Duration::from_secs(30),
    )
    .map_err(|e| format!("--ca {}: {e}", ca.display()))?;
    client.get("/.well-known/jwks.json").await.map_err(|e| e.to_string())
}

/// Loads the key, fetches the JWKS, and serves until the process ends.
pub async fn run(opts: Options) -> Result<(), String> {
    crate::tls::install_provider();
    let text = Zeroizing::new(
        std::fs::read(&opts.key_file).map_err(|e| format!("--key-file {}: {e}", opts.key_file.display()))?,
    );
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&opts.key_file).map_err(|e| e.to_string())?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(format!("{} is readable by others; chmod 600 it", opts.key_file.display()));
        }
    }
    let file: ServiceKeyFile = serde_json::from_slice(&text)
        .map_err(|e| format!("{}: not a service key file: {e}", opts.key_file.display()))?;
    if file.service_id != opts.service_id {
        return Err(format!("the key file is for {:?}, not {:?}", file.service_id, opts.service_id));
    }
    let key = file.key().map_err(|e| format!("{}: {e}", opts.key_file.display()))?;
    let jwks = fetch_jwks(&opts.brokers, &opts.ca).await?;
    let offset = clock_offset();
    let shared = Arc::new(Shared {
        verifier: ServiceVerifier::new(key, &opts.issuer, jwks),
        // A *restarted* service must refuse authenticators for one skew
        // interval (RFC 4120 §3.2.3); a first start has nothing to forget.
        cache: Mutex::new(if opts.restart_window {
            ReplayCache::new_after_restart(now(offset))
        } else {
            ReplayCache::new()
        }),
        store: Mutex::new(HashMap::new()),
        clock_offset: offset,
    });
    let listener = TcpListener::bind(&opts.listen).await.map_err(|e| format!("listen {}: {e}", opts.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening on {addr}");
    tracing::info!(service = %opts.service_id, %addr, "example service up");
    // The limits every server of ours keeps (docs/security.md item 1): a
    // slot per connection, a share per source address, a deadline per
    // connection (one request each), refusals logged at a bounded rate.
    let limits = Limits::default();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let sources = Arc::new(Sources::default());
    let log_limit = LogLimit::default();
    let started = std::time::Instant::now();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { break Ok(()) };
        let (sock, peer) = match listener.accept().await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(place) = sources.take(peer.ip(), limits.max_per_source) else {
            if let Some(suppressed) = log_limit.allow(started.elapsed().as_secs()) {
                tracing::info!(%peer, suppressed, "connection refused: too many from this address");
            }
            continue;
        };
        let shared = shared.clone();
        let deadline = limits.header_timeout;
        tokio::spawn(async move {
            let r = tokio::time::timeout(deadline, serve(sock, &shared)).await;
            if let Ok(Err(e)) = r {
                tracing::debug!(%peer, "connection: {e}");
            }
            drop((place, slot));
        });
    }
}

/// What a request needs and does.
fn apply(shared: &Shared, client: &str, level: Level, request: &str) -> Result<String, String> {
    let mut words = request.splitn(3, ' ');
    let op = words.next().unwrap_or("");
    let need = match op {
        "read" => Level::Temporary,
        "write" => Level::WRITE,
        "admin" => Level::ADMIN,
        _ => return Err(format!("unknown operation {op:?} (read KEY, write KEY VALUE, admin stats)")),
    };
    require_level(level, need).map_err(|e| format!("{op} denied for {client}: {e}"))?;
    let mut store = shared.store.lock().map_err(|_| "store poisoned".to_string())?;
    let key = words.next().unwrap_or("").to_string();
    Ok(match op {
        "read" => format!(
            "ok {op} by {client} (level {level}): {key} = {}",
            store.get(&key).map(String::as_str).unwrap_or("(unset)")
        ),
        "write" => {
            store.insert(key.clone(), words.next().unwrap_or("").to_string());
            format!("ok {op} by {client} (level {level}): {key} stored")
        }
        _ => format!("ok {op} by {client} (level {level}): {} keys", store.len()),
    })
}

async fn serve(mut sock: TcpStream, shared: &Shared) -> Result<(), String> {
    let answer = match frame::read::<ServiceRequest, _>(&mut sock).await {
        Err(FrameError::Json(e)) => ServiceAnswer::Error(format!("not a ServiceRequest: {e}")),
        Err(e) => return Err(e.to_string()),
        Ok(req) => {
            let t = now(shared.clock_offset);
            let authorized = {
                let mut cache = shared.cache.lock().map_err(|_| "replay cache poisoned".to_string())?;
                shared.verifier.authorize(&req, t, &mut cache)
            };
            match authorized {
                Err(e) => {
                    tracing::warn!(security = true, "request refused: {e}");
                    ServiceAnswer::Error(e.fault().for_peer(&e))
                }
                Ok(auth) => {
                    let text = String::from_utf8_lossy(&auth.request).to_string();
                    match apply(shared, &auth.client, auth.level, &text) {
                        Err(msg) => {
                            tracing::info!(client = %auth.client, level = auth.level.as_u8(), "refused: {msg}");
                            ServiceAnswer::Error(msg)
                        }
                        Ok(answer) => {
                            tracing::info!(client = %auth.client, level = auth.level.as_u8(), "{text:?} done");
                            let reply = auth
                                .reply(answer.as_bytes(), &mut dirbroker_service::clock::rng())
                                .map_err(|e| e.to_string())?;
                            ServiceAnswer::Reply(reply)
                        }
                    }
                }
            }
        }
    };
    frame::write(&mut sock, &answer).await.map_err(|e| e.to_string())
}
