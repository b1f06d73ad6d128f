//! The one HTTPS JSON client of our routes (`dirbroker serve`, AMS, ANS):
//! used by the broker to reach its agents, by the agents to reach the
//! broker, and by `dirbroker login|register|ticket`. The bodies are
//! `dirbroker_proto::api`'s; a refusal is read from its
//! [`ErrorBody`](dirbroker_proto::api::ErrorBody).

use std::time::Duration;

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

/// A JSON client of one base URL.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
}

impl ApiClient {
    /// A client of `base` (`https://host:port`) with this TLS configuration
    /// (roots, and a client certificate where the peer asks for one). No
    /// connection is kept (HTTP/1.1, no idle pool; an HTTP/2 connection would
    /// be shared on): every call dials and is judged by the CRL in force then
    /// ([`crate::pki`]), not by the one of an older handshake.
    pub fn new(base: &str, tls: rustls::ClientConfig, timeout: Duration) -> Result<ApiClient, ClientError> {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .pool_max_idle_per_host(0)
            .http1_only()
            .timeout(timeout)
            .build()
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        Ok(ApiClient { http, base: base.trim_end_matches('/').to_string() })
    }

    /// A client trusting only the CA certificate in `ca_pem` and only a
    /// server certificate of `kind` from it, without a certificate of its own.
    pub fn trusting(
        base: &str,
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
        ApiClient::new(base, tls, timeout)
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET base+path`, decoded.
    pub async fn get<R: DeserializeOwned>(&self, path: &str) -> Result<R, ClientError> {
        let sent = self.http.get(format!("{}{path}", self.base)).send().await;
        self.answer(path, sent).await
    }

    /// `POST base+path` with a JSON body, decoded.
    pub async fn post<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R, ClientError> {
        let sent = self.http.post(format!("{}{path}", self.base)).json(body).send().await;
        self.answer(path, sent).await
    }

    async fn answer<R: DeserializeOwned>(
        &self,
        path: &str,
        sent: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<R, ClientError> {
        let resp = sent.map_err(|e| ClientError::Unreachable { base: self.base.clone(), detail: chain(&e) })?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            let message = serde_json::from_str::<dirbroker_proto::api::ErrorBody>(&text)
                .map(|b| b.error)
                .unwrap_or_else(|_| text.trim().to_string());
            let message = if message.is_empty() { "no reason given".to_string() } else { message };
            return Err(ClientError::Refused {
                base: self.base.clone(),
                path: path.to_string(),
                status: status.as_u16(),
                message,
            });
        }
        resp.json().await.map_err(|e| ClientError::Unreadable {
            base: self.base.clone(),
            path: path.to_string(),
            detail: e.to_string(),
        })
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
