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
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
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
