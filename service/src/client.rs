//! The one HTTPS JSON client of our routes (`dirbroker serve`, AMS, ANS):
//! used by the broker to reach its agents, by the agents to reach the
//! broker, and by `dirbroker login|register|ticket`. The bodies are
//! `dirbroker_proto::api`'s; a refusal is read from its
//! [`ErrorBody`](dirbroker_proto::api::ErrorBody).
//!
//! A client knows one or several base URLs (several `dirbroker serve` side
//! by side, docs/replication.md) and fails over between them here, for
//! every caller:
//!
//! ```text
//!  request ─► first URL not skipped ── no connection / TLS handshake (connect timeout) ─► next URL,
//!             │                         this one skipped for SKIP_FAILED_FOR (a hung broker costs one timeout)
//!             ├─ sent, then no answer, or 502/503/504 ─► Repeat::Anywhere: next URL
//!             │                                          Repeat::Once: that error (it may have been applied)
//!             │                                          Repeat::SameUrl: the same URL again after each wait
//!             └─ an answer ─► decoded, or ClientError::Refused
//! ```
//!
//! A request is sent to a second broker only when the first surely did not
//! get it (no connection, no TLS session), or when asking twice is harmless
//! ([`Repeat`]).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a call gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The client could not be built (TLS material).
    #[error("HTTPS client: {0}")]
    Setup(String),
    /// No connection, TLS failure or timeout.
    #[error("cannot reach {base}: {detail}")]
    Unreachable { base: String, detail: String },
    /// The peer answered with an error status.
    #[error("{path}: {base} answered {status}: {message}")]
    Refused { base: String, path: String, status: u16, message: String },
    /// A success status with a body that is not the expected JSON.
    #[error("{path}: unexpected answer from {base}: {detail}")]
    Unreadable { base: String, path: String, detail: String },
}

impl ClientError {
    /// Worth retrying later: the peer was unreachable or failed itself (5xx).
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } => true,
            ClientError::Refused { status, .. } => *status >= 500,
            ClientError::Setup(_) | ClientError::Unreadable { .. } => false,
        }
    }
}

/// How long a base URL that could not be reached is tried last.
pub const SKIP_FAILED_FOR: Duration = Duration::from_secs(30);

/// The most a connection and TLS handshake may take: a hung peer (SIGSTOPped,
/// or its host gone) accepts TCP connections in its kernel but never answers
/// the handshake; past this the request surely was not sent.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether a request may reach a second base URL after the first may have
/// received it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeat<'a> {
    /// Reads, and requests every peer decides the same way twice: after no
    /// answer or a 502/503/504, the next URL.
    Anywhere,
    /// It may consume something (an OTP code, an invitation, an
    /// authenticator, a registration): once it may have reached a peer it is
    /// sent to no other; only a failed connection moves it on.
    Once,
    /// Like `Once`, but the peer keeps its decision by request (the
    /// `/v1/otp/verify` decision cache, per process): after no answer or a
    /// 5xx the same URL is asked again after each of these waits.
    SameUrl(&'a [Duration]),
}

/// A JSON client of one or several base URLs, tried in their order.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    bases: Arc<[String]>,
    /// When each base URL last failed to connect (skipped for [`SKIP_FAILED_FOR`]).
    failed: Arc<Mutex<Vec<Option<Instant>>>>,
}

/// Base URLs from a list such as `--broker` takes: comma-separated, each
/// `https://host:port`, at least one, no duplicates.
pub fn base_urls<S: AsRef<str>>(list: &[S]) -> Result<Vec<String>, ClientError> {
    let mut out: Vec<String> = Vec::new();
    for part in list.iter().flat_map(|s| s.as_ref().split(',')) {
        let url = part.trim().trim_end_matches('/');
        if url.is_empty() {
            continue;
        }
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| ClientError::Setup(format!("{url:?}: a base URL is https://HOST:PORT")))?;
        if rest.is_empty() || rest.contains(['/', '?', '#', ' ', '@']) {
            return Err(ClientError::Setup(format!("{url:?}: a base URL is https://HOST:PORT, without a path")));
        }
        if out.iter().any(|u| u == url) {
            return Err(ClientError::Setup(format!("{url:?} is named twice")));
        }
        out.push(url.to_string());
    }
    if out.is_empty() {
        return Err(ClientError::Setup("no base URL given".into()));
    }
    Ok(out)
}

/// What one attempt at one base URL came to.
enum Attempt<R> {
    Done(Result<R, ClientError>),
    /// Not sent: no connection or no TLS session.
    NotSent(ClientError),
    /// Sent, and no answer or a 502/503/504.
    MaybeApplied(ClientError),
}

impl ApiClient {
    /// A client of `bases` (each `https://host:port`, see [`base_urls`])
    /// with this TLS configuration (roots, and a client certificate where
    /// the peer asks for one). No connection is kept (HTTP/1.1, no idle
    /// pool; an HTTP/2 connection would be shared on): every call dials and
    /// is judged by the CRL in force then ([`crate::pki`]), not by the one
    /// of an older handshake.
    pub fn new<S: AsRef<str>>(
        bases: &[S],
        tls: rustls::ClientConfig,
        timeout: Duration,
    ) -> Result<ApiClient, ClientError> {
        let bases = base_urls(bases)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .pool_max_idle_per_host(0)
            .http1_only()
            // Below the whole timeout, so that a hung handshake is told apart (not sent).
            .connect_timeout(CONNECT_TIMEOUT.min(timeout / 2))
            .timeout(timeout)
            .build()
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        let failed = Arc::new(Mutex::new(vec![None; bases.len()]));
        Ok(ApiClient { http, bases: bases.into(), failed })
    }

    /// A client trusting only the CA certificate in `ca_pem` and only a
    /// server certificate of `kind` from it, without a certificate of its own.
    pub fn trusting<S: AsRef<str>>(
        bases: &[S],
        ca_pem: &[u8],
        kind: crate::holder::CertKind,
        timeout: Duration,
    ) -> Result<ApiClient, ClientError> {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let ca =
            CertificateDer::from_pem_slice(ca_pem).map_err(|e| ClientError::Setup(format!("CA certificate: {e}")))?;
        let pki = crate::pki::Pki::new(ca, None).map_err(|e| ClientError::Setup(e.to_string()))?;
        let tls = pki.client_config(kind, None).map_err(|e| ClientError::Setup(e.to_string()))?;
        ApiClient::new(bases, tls, timeout)
    }

    /// A client of the same base URLs with another TLS configuration (say,
    /// with and without a client certificate), sharing what this one knows
    /// of URLs that could not be reached: the pair pays a hung peer once.
    pub fn with_tls(&self, tls: rustls::ClientConfig, timeout: Duration) -> Result<ApiClient, ClientError> {
        let other = ApiClient::new(&self.bases, tls, timeout)?;
        Ok(ApiClient { failed: self.failed.clone(), ..other })
    }

    /// The base URLs, in their order.
    pub fn bases(&self) -> &[String] {
        &self.bases
    }

    /// `GET base+path`, decoded; any base URL may answer.
    pub async fn get<R: DeserializeOwned>(&self, path: &str) -> Result<R, ClientError> {
        self.call(path, Repeat::Anywhere, |http, url| http.get(url)).await
    }

    /// `POST base+path` with a JSON body, decoded; sent to a second base URL
    /// only when the first surely did not get it ([`Repeat::Once`]).
    pub async fn post<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R, ClientError> {
        self.post_with(path, body, Repeat::Once).await
    }

    /// `POST base+path` with a JSON body, decoded, repeated as `repeat` allows.
    pub async fn post_with<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        repeat: Repeat<'_>,
    ) -> Result<R, ClientError> {
        self.call(path, repeat, |http, url| http.post(url).json(body)).await
    }

    /// The order to try the base URLs in: those that did not fail lately
    /// first, in their order, then the others, in their order.
    fn order(&self, now: Instant) -> Vec<usize> {
        let failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        let skipped = |i: &usize| {
            failed.get(*i).copied().flatten().is_some_and(|at| now.saturating_duration_since(at) < SKIP_FAILED_FOR)
        };
        let (mut first, last): (Vec<usize>, Vec<usize>) = (0..self.bases.len()).partition(|i| !skipped(i));
        first.extend(last);
        first
    }

    fn mark(&self, i: usize, failed: Option<Instant>) {
        if let Some(slot) = self.failed.lock().unwrap_or_else(PoisonError::into_inner).get_mut(i) {
            *slot = failed;
        }
    }

    async fn call<R: DeserializeOwned>(
        &self,
        path: &str,
        repeat: Repeat<'_>,
        request: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<R, ClientError> {
        let mut last = None;
        for i in self.order(Instant::now()) {
            let Some(base) = self.bases.get(i) else { continue };
            let mut waits = match repeat {
                Repeat::SameUrl(waits) => waits.iter(),
                Repeat::Anywhere | Repeat::Once => [].iter(),
            };
            // Whether this URL may have got the request already: then no other may.
            let mut reached = false;
            let e = loop {
                let sent = request(&self.http, &format!("{base}{path}")).send().await;
                let attempt = match (repeat, self.answer(base, path, sent).await) {
                    // The peer keeps its decision: a 500 or an unreadable answer is asked again too.
                    (Repeat::SameUrl(_), Attempt::Done(Err(e)))
                        if e.is_retryable() || matches!(e, ClientError::Unreadable { .. }) =>
                    {
                        Attempt::MaybeApplied(e)
                    }
                    (_, attempt) => attempt,
                };
                match attempt {
                    Attempt::Done(r) => {
                        self.mark(i, None);
                        return r;
                    }
                    Attempt::NotSent(e) if reached => return Err(e),
                    Attempt::NotSent(e) => {
                        tracing::warn!(
                            "{e}; trying the next URL, and this one last for {} s",
                            SKIP_FAILED_FOR.as_secs()
                        );
                        self.mark(i, Some(Instant::now()));
                        break e;
                    }
                    Attempt::MaybeApplied(e) => match (repeat, waits.next()) {
                        (Repeat::Anywhere, _) => break e,
                        (Repeat::SameUrl(_), Some(wait)) => {
                            reached = true;
                            tracing::warn!("{e}; asking {base} again");
                            tokio::time::sleep(*wait).await;
                        }
                        (Repeat::Once, _) | (Repeat::SameUrl(_), None) => return Err(e),
                    },
                }
            };
            last = Some(e);
        }
        Err(last.unwrap_or_else(|| ClientError::Setup("no base URL".into())))
    }

    async fn answer<R: DeserializeOwned>(
        &self,
        base: &str,
        path: &str,
        sent: Result<reqwest::Response, reqwest::Error>,
    ) -> Attempt<R> {
        let resp = match sent {
            Ok(resp) => resp,
            Err(e) => {
                let failed = ClientError::Unreachable { base: base.to_string(), detail: chain(&e) };
                return if e.is_connect() { Attempt::NotSent(failed) } else { Attempt::MaybeApplied(failed) };
            }
        };
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            let message = serde_json::from_str::<dirbroker_proto::api::ErrorBody>(&text)
                .map(|b| b.error)
                .unwrap_or_else(|_| text.trim().to_string());
            let message = if message.is_empty() { "no reason given".to_string() } else { message };
            let refused = ClientError::Refused {
                base: base.to_string(),
                path: path.to_string(),
                status: status.as_u16(),
                message,
            };
            return if matches!(status.as_u16(), 502..=504) {
                Attempt::MaybeApplied(refused)
            } else {
                Attempt::Done(Err(refused))
            };
        }
        Attempt::Done(resp.json().await.map_err(|e| ClientError::Unreadable {
            base: base.to_string(),
            path: path.to_string(),
            detail: e.to_string(),
        }))
    }
}

/// An error and its sources, one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn base_urls_are_https_host_port_each_once() {
        assert_eq!(
            base_urls(&["https://a:1/, https://b:2", "https://c:3"]).unwrap(),
            ["https://a:1", "https://b:2", "https://c:3"]
        );
        for bad in [
            "",
            " , ",
            "http://a:1",
            "a:1",
            "https://",
            "https://a:1/v1",
            "https://u@a:1",
            "https://a:1?x",
            "https://a:1,https://a:1",
        ] {
            assert!(matches!(base_urls(&[bad]), Err(ClientError::Setup(_))), "{bad:?} taken");
        }
    }

    /// A TLS server on loopback that counts the requests it reads and
    /// answers each with `answer` (raw HTTP), or never when `None`.
    async fn server(answer: Option<&'static str>) -> (String, Arc<AtomicUsize>, rustls::RootCertStore) {
        crate::install_crypto_provider();
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let der = cert.cert.der().clone();
        let key = rustls_pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
        let config =
            rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(vec![der.clone()], key).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let (acceptor, counter) = (acceptor.clone(), counter.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    let mut buf = vec![0u8; 4096];
                    if tls.read(&mut buf).await.unwrap_or(0) > 0 {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    match answer {
                        Some(a) => {
                            let _ = tls.write_all(a.as_bytes()).await;
                            let _ = tls.shutdown().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                });
            }
        });
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        (url, seen, roots)
    }

    const OK: &str =
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
    const UNAVAILABLE: &str = "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

    fn client(urls: &[&str], roots: &[&rustls::RootCertStore]) -> ApiClient {
        let mut store = rustls::RootCertStore::empty();
        for r in roots {
            store.roots.extend(r.roots.iter().cloned());
        }
        let tls = rustls::ClientConfig::builder().with_root_certificates(store).with_no_client_auth();
        ApiClient::new(urls, tls, Duration::from_millis(1500)).unwrap()
    }

    #[tokio::test]
    async fn a_request_that_may_have_reached_a_peer_goes_to_no_other_unless_it_may_be_repeated() {
        // The first peer reads the request and never answers; the second answers.
        let (silent, heard, r1) = server(None).await;
        let (good, served, r2) = server(Some(OK)).await;
        let c = client(&[&silent, &good], &[&r1, &r2]);
        let once: Result<serde_json::Value, _> = c.post("/v1/consume", &serde_json::json!({})).await;
        assert!(matches!(once, Err(ClientError::Unreachable { .. })), "{once:?}");
        assert_eq!((heard.load(Ordering::SeqCst), served.load(Ordering::SeqCst)), (1, 0));
        // Asked of the same peer again after each wait, never of the other.
        let waits = [Duration::from_millis(10)];
        let same: Result<serde_json::Value, _> =
            c.post_with("/v1/otp/verify", &serde_json::json!({}), Repeat::SameUrl(&waits)).await;
        assert!(same.is_err());
        assert_eq!((heard.load(Ordering::SeqCst), served.load(Ordering::SeqCst)), (3, 0));
        // A read moves on.
        let read: serde_json::Value = c.get("/v1/pki/ca").await.unwrap();
        assert_eq!(read, serde_json::json!({}));
        assert_eq!(served.load(Ordering::SeqCst), 1);

        // A 503 is "may have been applied" too: a consuming request stays.
        let (busy, busy_heard, r3) = server(Some(UNAVAILABLE)).await;
        let c = client(&[&busy, &good], &[&r3, &r2]);
        let once: Result<serde_json::Value, _> = c.post("/v1/consume", &serde_json::json!({})).await;
        assert!(matches!(once, Err(ClientError::Refused { status: 503, .. })), "{once:?}");
        assert_eq!((busy_heard.load(Ordering::SeqCst), served.load(Ordering::SeqCst)), (1, 1));
        let _: serde_json::Value = c.get("/x").await.unwrap();
        assert_eq!(served.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_peer_that_cannot_be_reached_is_passed_and_then_tried_last() {
        let (good, served, roots) = server(Some(OK)).await;
        // Nothing listens there: the request surely did not reach it.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("https://{}", l.local_addr().unwrap())
        };
        // A TCP listener that never speaks TLS: a hung peer.
        let hung_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hung = format!("https://{}", hung_listener.local_addr().unwrap());
        let c = client(&[&dead, &hung, &good], &[&roots]);
        let _: serde_json::Value = c.post("/v1/consume", &serde_json::json!({})).await.unwrap();
        assert_eq!(served.load(Ordering::SeqCst), 1);
        assert_eq!(c.order(Instant::now()), [2, 0, 1]);
        // The next requests go straight to the one that answered.
        let _: serde_json::Value = c.post("/v1/consume", &serde_json::json!({})).await.unwrap();
        assert_eq!(served.load(Ordering::SeqCst), 2);
        assert_eq!(c.order(Instant::now() + SKIP_FAILED_FOR), [0, 1, 2]);
        drop(hung_listener);
    }
}
