//! The data-center daemon: plays the source or the destination of a
//! migration.
//!
//! At start it loads its bundle (key and certificate from `dirbroker dc
//! add`), asks the broker for the CA and CRL and for its own credentials
//! (K1 keys with admins, SPEKE passwords with other data centers, the TOTP
//! secrets of its physical servers), then listens. The first message on a
//! connection says which role the peer wants:
//!
//! - `Auth_Request` from an admin console → we are the source;
//! - `Mig_Request_DC` from another data center (mutual TLS) → we are the
//!   destination.

use dirbroker_proto::encoding::hex;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use crate::broker::{Broker, DcCredentials, Server};
use crate::migration::authorisation::UserAuthorisation;
use crate::migration::crypto::{DcIdentity, Trust};
use crate::migration::messages::*;
use crate::migration::operation::{self, DcChannel};
use crate::migration::request::{self, ReplayCache};
use crate::migration::{MigrationError, speke_session};
use crate::wire::{self, Message};

/// How the daemon is started.
#[derive(Debug, Clone)]
pub struct DcOptions {
    pub bundle: PathBuf,
    /// The brokers' base URLs, tried in order.
    pub brokers: Vec<String>,
    pub listen: String,
    pub timeout: Duration,
    /// How long a physical server may take to move the image.
    pub transfer_timeout: Duration,
    /// How often the CA, CRL and credentials are fetched again.
    pub refresh: Duration,
}

/// What the broker hands out and may change: re-read every `refresh`.
struct Keys {
    trust: Trust,
    creds: DcCredentials,
    acceptor: tokio_rustls::TlsAcceptor,
    client_tls: Arc<rustls::ClientConfig>,
}

impl Keys {
    async fn fetch(broker: &Broker, me: &DcIdentity) -> Result<Keys, MigrationError> {
        let trust = broker.trust().await?;
        let creds = broker.credentials(&me.did).await?;
        let acceptor = crate::tls::dc_server(me, &trust).map_err(local)?;
        let client_tls = Arc::new(crate::tls::client_config(trust.ca_der(), Some(&trust), Some(me)).map_err(local)?);
        Ok(Keys { trust, creds, acceptor, client_tls })
    }
}

struct Dc {
    me: DcIdentity,
    broker: Broker,
    /// A connection takes one snapshot and keeps it to its end.
    keys: std::sync::RwLock<Arc<Keys>>,
    replay: Mutex<ReplayCache>,
    /// The last TOTP step used with each physical server (one session per step).
    steps: Mutex<HashMap<String, u64>>,
    timeout: Duration,
    transfer_timeout: Duration,
}

fn unix_secs() -> i64 {
    i64::try_from(dirbroker_service::clock::unix_time().as_secs()).unwrap_or(i64::MAX)
}

fn local(e: impl std::fmt::Display) -> MigrationError {
    MigrationError::Local(e.to_string())
}

/// Loads credentials, binds, and serves until the process is stopped.
pub async fn run(opts: DcOptions) -> Result<(), MigrationError> {
    crate::tls::install_provider();
    let me = DcIdentity::load(&opts.bundle)?;
    let ca_pem = std::fs::read(opts.bundle.join("ca.pem"))
        .map_err(|e| local(format!("{}: {e}", opts.bundle.join("ca.pem").display())))?;
    let broker = Broker::new(&opts.brokers, &ca_pem, &me)?;
    let keys = Keys::fetch(&broker, &me).await?;
    let listener =
        TcpListener::bind(&opts.listen).await.map_err(|e| local(format!("listen on {}: {e}", opts.listen)))?;
    let addr = listener.local_addr().map_err(local)?;
    tracing::info!(
        did = %me.did,
        k1 = keys.creds.k1.len(),
        peers = keys.creds.peers.len(),
        servers = keys.creds.servers.len(),
        "data center listening on {addr}"
    );
    // The line tests and scripts wait for.
    println!("listening on {addr}");
    let dc = Arc::new(Dc {
        me,
        broker,
        keys: std::sync::RwLock::new(Arc::new(keys)),
        replay: Mutex::new(ReplayCache::default()),
        steps: Mutex::new(HashMap::new()),
        timeout: opts.timeout,
        transfer_timeout: opts.transfer_timeout,
    });
    // Revocations, rotated keys and new servers reach a running daemon.
    let refresher = dc.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(opts.refresh).await;
            match Keys::fetch(&refresher.broker, &refresher.me).await {
                Ok(keys) => {
                    if let Ok(mut k) = refresher.keys.write() {
                        if k.trust.crl_der() != keys.trust.crl_der() {
                            tracing::info!("new CRL from the broker");
                        }
                        *k = Arc::new(keys);
                    }
                    tracing::debug!("CA, CRL and credentials refreshed");
                }
                Err(e) => tracing::warn!("refresh failed, keeping the previous credentials: {e}"),
            }
        }
    });
    loop {
        let (tcp, peer) = listener.accept().await.map_err(local)?;
        let dc = dc.clone();
        tokio::spawn(async move {
            if let Err(e) = dc.connection(tcp).await {
                if e.fault().blames_peer() {
                    tracing::warn!(%peer, security = true, "refused: {e}");
                } else {
                    tracing::info!(%peer, "connection ended: {e}");
                }
            }
        });
    }
}

impl Dc {
    fn keys(&self) -> Result<Arc<Keys>, MigrationError> {
        self.keys.read().map(|k| k.clone()).map_err(|_| local("credentials lock poisoned"))
    }

    async fn connection(&self, tcp: TcpStream) -> Result<(), MigrationError> {
        let _ = tcp.set_nodelay(true);
        let keys = self.keys()?;
        let mut tls = tokio::time::timeout(self.timeout, keys.acceptor.accept(tcp))
            .await
            .map_err(|_| local("TLS handshake timed out"))?
            .map_err(|e| local(format!("TLS handshake: {e}")))?;
        let peer_cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.as_ref().to_vec());
        let first = wire::read_frame(&mut tls, "Auth_Request or Mig_Request_DC", self.timeout).await?;
        let kind = first.get(1).copied().unwrap_or_default();
        let result = if kind == AuthRequest::KIND {
            let req: AuthRequest = wire::decode(&first, kind_name)?;
            self.as_source(&keys, &mut tls, req).await
        } else if kind == MigRequestDc::KIND {
            let req: MigRequestDc = wire::decode(&first, kind_name)?;
            match peer_cert {
                Some(cert) => self.as_destination(&keys, &mut tls, req, cert).await,
                None => Err(MigrationError::Mismatch {
                    what: MigRequestDc::NAME,
                    detail: "a data center must present its certificate (mutual TLS)".into(),
                }),
            }
        } else {
            Err(wire::decode::<AuthRequest>(&first, kind_name).err().map_or_else(|| local("unexpected"), Into::into))
        };
        if let Err(e) = &result {
            wire::refuse(&mut tls, e.fault(), e).await;
        }
        result
    }

    /// The source data center, from the admin's `Auth_Request` to `Migration_Done`.
    async fn as_source<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        keys: &Keys,
        admin: &mut S,
        req: AuthRequest,
    ) -> Result<(), MigrationError> {
        let check = {
            let mut replay = self.replay.lock().map_err(|_| local("replay cache poisoned"))?;
            let mut rng = dirbroker_service::clock::rng();
            request::receive_auth_request(&keys.creds.k1, &self.me.did, &req, &mut replay, unix_secs(), &mut rng)?
        };
        // Step 3: the broker verifies and consumes the user's OTP, and signs
        // the user's authorisation of this migration id for the destination.
        let consumed = match self.broker.verify_otp(&check.uid, &check.otp, &check.migration_id).await? {
            Ok(consumed) => consumed,
            Err(reason) => {
                tracing::warn!(uid = %check.uid, admin = %check.admin(), security = true, "OTP refused: {reason}");
                return Err(MigrationError::OtpRefused(reason));
            }
        };
        tracing::info!(uid = %check.uid, admin = %check.admin(), "user authenticated by OTP");
        let (reply, waiting) = check.accepted(consumed, &mut dirbroker_service::clock::rng())?;
        wire::send(admin, &reply).await?;
        let m: MigRequestAdmin = wire::recv(admin, kind_name, self.timeout).await?;
        let (order, session) = waiting.receive(&m)?;
        let outcome = self.migrate_out(keys, &order, session.authorisation()).await;
        let (migration_id, outcome) = match outcome {
            Ok((id, t)) => (id, Ok(t)),
            Err((id, e)) => (id, Err(e.for_peer())),
        };
        if let Err(e) = &outcome {
            tracing::warn!(uid = %order.uid, vm = %order.mig_rqst.vm, "migration failed: {e}");
        } else {
            tracing::info!(uid = %order.uid, vm = %order.mig_rqst.vm, dest = %order.dest_did, "migration done");
        }
        // Migration_Done is the last message either way: no Refusal after it.
        wire::send(admin, &session.done(&MigrationDoneBody { migration_id, outcome })?).await?;
        Ok(())
    }

    async fn migrate_out(
        &self,
        keys: &Keys,
        order: &MigRequestAdminBody,
        authorisation: &UserAuthorisation,
    ) -> Result<([u8; 16], Transferred), ([u8; 16], MigrationError)> {
        let no_id = [0u8; 16];
        let server = keys.creds.servers.get(&order.mig_rqst.source_server).ok_or_else(|| {
            (no_id, MigrationError::Unknown { what: "physical server", name: order.mig_rqst.source_server.clone() })
        })?;
        let password = keys
            .creds
            .peers
            .get(&order.dest_did)
            .ok_or_else(|| (no_id, local(format!("no SPEKE password shared with {}", order.dest_did))))?;
        // Step 5: Mig_Request_DC to the destination's certified key.
        let public = self.broker.dc(&order.dest_did).await.map_err(|e| (no_id, e))?;
        let dest = keys
            .trust
            .verify_dc(&public.cert_der, Some(&order.dest_did), dirbroker_service::clock::unix_time())
            .map_err(|e| (no_id, e.into()))?;
        let (req, waiting) =
            request::mig_request_dc(&self.me, &dest, order, authorisation, unix_secs()).map_err(|e| (no_id, e))?;
        let id = waiting.migration_id();
        let run = async {
            let mut peer = crate::tls::connect(keys.client_tls.clone(), &public.endpoint).await.map_err(local)?;
            let presented = peer.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.as_ref().to_vec());
            if presented.as_deref() != Some(public.cert_der.as_slice()) {
                return Err(MigrationError::Mismatch {
                    what: "TLS certificate",
                    detail: format!("{} did not present the certificate the directory holds", public.endpoint),
                });
            }
            wire::send(&mut peer, &req).await?;
            let resp: MigResponseDc = wire::recv(&mut peer, kind_name, self.timeout).await?;
            if presented.as_deref() != Some(resp.cert_dest.as_slice()) {
                return Err(MigrationError::Mismatch {
                    what: MigResponseDc::NAME,
                    detail: "Cert_Dest is not the certificate of the connection".into(),
                });
            }
            let ack = waiting.receive(&self.me, &keys.trust, &resp, dirbroker_service::clock::unix_time())?;
            // The destination's signature is the evidence (non-repudiation):
            // logged with what it covers, so anyone can verify it later with
            // the destination's certificate.
            tracing::info!(
                evidence = true,
                dest = %ack.dest.common_name,
                migration = %hex(&ack.request.migration_id),
                request_sha256 = %hex(&ack.request_digest),
                signature = %hex(&ack.signature),
                "Mig_Response_DC: destination accepted (signed Dest_DID ‖ Ack)"
            );
            let id = ack.request.migration_id;
            // Operation step 1: SPEKE.
            let session =
                speke_session(&mut peer, password, &self.me.did, &order.dest_did, true, &id, self.timeout).await?;
            let (sk, waiting) = session.source()?;
            let ready: DestReady = wire::recv(&mut peer, kind_name, self.timeout).await?;
            let (ready, waiting) = waiting.receive(&ready)?;
            // Operation steps 2–3: our server sends the image.
            let job = Job::Send { vm: order.mig_rqst.vm.clone(), to: ready.data_addr };
            let sent = self.run_server(server, &sk, id, job, None).await?;
            let committed: MigrationCommitted = wire::recv(&mut peer, kind_name, self.transfer_timeout).await?;
            let committed = waiting.receive(&committed)?;
            let committed = committed.outcome.map_err(|e| MigrationError::Transfer(format!("destination: {e}")))?;
            if committed != sent {
                return Err(MigrationError::Transfer("the destination committed other bytes than we sent".into()));
            }
            Ok::<_, MigrationError>(committed)
        };
        run.await.map(|t| (id, t)).map_err(|e| (id, e))
    }

    /// The destination data center.
    async fn as_destination<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        keys: &Keys,
        src: &mut S,
        req: MigRequestDc,
        peer_cert: Vec<u8>,
    ) -> Result<(), MigrationError> {
        let incoming = {
            let mut replay = self.replay.lock().map_err(|_| local("replay cache poisoned"))?;
            request::receive_mig_request_dc(
                &self.me,
                &keys.trust,
                &req,
                &peer_cert,
                &mut replay,
                dirbroker_service::clock::unix_time(),
            )?
        };
        let request = incoming.body.clone();
        let src_did = request.src_did.clone();
        let server = keys.creds.servers.get(&request.mig_rqst.dest_server);
        let password = keys.creds.peers.get(&src_did);
        let ack = match (server, password) {
            (None, _) => Ack::Refused(format!("{} is not a server of {}", request.mig_rqst.dest_server, self.me.did)),
            (_, None) => Ack::Refused(format!("no SPEKE password shared with {src_did}")),
            _ => Ack::Accepted,
        };
        wire::send(src, &incoming.respond(&self.me, ack.clone())?).await?;
        let (Some(server), Some(password), Ack::Accepted) = (server, password, ack) else {
            return Ok(());
        };
        tracing::info!(src = %src_did, uid = %request.uid, vm = %request.mig_rqst.vm, "migration accepted");
        let id = request.migration_id;
        let session = speke_session(src, password, &self.me.did, &src_did, false, &id, self.timeout).await?;
        let (sk, preparing) = session.destination()?;
        let job = Job::Receive { vm: request.mig_rqst.vm.clone() };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let server_run = self.run_server(server, &sk, id, job, Some(tx));
        let notify = async {
            let addr = rx.await.map_err(|_| local("the destination server did not get ready"))?;
            Ok::<_, MigrationError>(addr)
        };
        // Run the server session; as soon as it names its data port, tell the source.
        tokio::pin!(server_run);
        let addr = tokio::select! {
            addr = notify => addr?,
            early = &mut server_run => { early?; return Err(local("the destination server ended early")); }
        };
        let (ready, receiving) = preparing.ready(&DestReadyBody { data_addr: addr })?;
        wire::send(src, &ready).await?;
        let outcome = server_run.await.map_err(|e| e.for_peer());
        let committed = receiving.committed(&MigrationCommittedBody { outcome: outcome.clone() })?;
        wire::send(src, &committed).await?;
        outcome.map(|_| ()).map_err(MigrationError::Transfer)
    }

    /// Operation steps 2–3 with one of our physical servers: TOTP mutual
    /// authentication, `E_TOTP(SK)` with the job, then its report.
    async fn run_server(
        &self,
        server: &Server,
        sk: &[u8; 32],
        migration_id: [u8; 16],
        job: Job,
        ready: Option<tokio::sync::oneshot::Sender<String>>,
    ) -> Result<Transferred, MigrationError> {
        let step = self.next_step(server).await?;
        let mut tcp = TcpStream::connect(&server.endpoint)
            .await
            .map_err(|e| local(format!("cannot reach {} at {}: {e}", server.key.pid, server.endpoint)))?;
        let _ = tcp.set_nodelay(true);
        let (req, waiting) = operation::dc_ps_auth_request(&server.key, step, &mut dirbroker_service::clock::rng())?;
        wire::send(&mut tcp, &req).await?;
        let resp: DcPsAuthResponse = wire::recv(&mut tcp, kind_name, self.timeout).await?;
        let channel: DcChannel = waiting.receive(&resp)?;
        tracing::info!(server = %server.key.pid, "physical server authenticated (TOTP)");
        let (delivery, waiting) = channel.deliver(&SkDeliveryBody { sk: *sk, migration_id, job })?;
        wire::send(&mut tcp, &delivery).await?;
        let r: PsReady = wire::recv(&mut tcp, kind_name, self.timeout).await?;
        let (r, waiting) = waiting.receive(&r)?;
        if let Some(tx) = ready {
            let addr = r.data_addr.ok_or_else(|| local("the destination server named no data port"))?;
            let _ = tx.send(addr);
        }
        let report: TransferReport = wire::recv(&mut tcp, kind_name, self.transfer_timeout).await?;
        waiting.receive(&report)?.outcome.map_err(|e| MigrationError::Transfer(format!("{}: {e}", server.key.pid)))
    }

    /// A TOTP step not yet used with this server: now, or the next one.
    async fn next_step(&self, server: &Server) -> Result<u64, MigrationError> {
        loop {
            let now = server.key.step(dirbroker_service::clock::unix_time().as_secs());
            let candidate = {
                let mut steps = self.steps.lock().map_err(|_| local("step table poisoned"))?;
                let last = steps.get(&server.key.pid).copied();
                let next = last.map_or(now, |l| now.max(l + 1));
                if next <= now + operation::STEP_WINDOW {
                    steps.insert(server.key.pid.clone(), next);
                    Some(next)
                } else {
                    None
                }
            };
            match candidate {
                Some(step) => return Ok(step),
                None => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    }
}
