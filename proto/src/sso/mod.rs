//! The SSO protocol of Seo & Lee, "A Study on Single Sign-On Authentication
//! Model using Multi Agent" (KICS 2003; seed 002), as a pure library: the
//! math, the messages, the tickets and the checks. No network, LDAP or HTTP;
//! time (`now`, unix seconds) and randomness (`&mut impl CryptoRng`) are
//! parameters.
//!
//! # Paper → code
//!
//! | Paper | Message struct | Function / state |
//! |---|---|---|
//! | pw | — | [`kdf::derive_pw`] (Argon2id, [`kdf::KdfParams`]) |
//! | Pre-stage: client sends ID_c and password information | [`registration::RegistrationRequest`] (ID_c, G1 = g^pw1, salt, kdf, epk_c) | [`registration::client_start_registration`] → [`registration::ClientAwaitingAgent`] |
//! | Stage 1 ①: broker stores g^pw1, ID_c; sends M_a, ID_a, g^pw1 to AMS | [`registration::AgentRequest`] | [`registration::broker_receive_registration`] → [`registration::BrokerAwaitingAgentCreated`] |
//! | Stage 1 ②: M_A, K = g^r, S_A, R_A, M_code = E_ANS(R_A, S_A, M_info) | [`registration::McodeToAns`], [`registration::MInfo`], [`registration::AgentCreated`] | [`registration::Ams::create_agent`], [`registration::compute_m_a`], [`registration::compute_s_a`] |
//! | Stage 1 ③: ANS opens M_code, keeps K, Userlevel = Sig_ANS(M_code ‖ T_ANS ‖ level) | [`registration::UserLevel`] | [`registration::Ans::receive_mcode`] → [`registration::AnsAwaitingShare`] |
//! | Stage 2 ①: AMS → client M_code, E_c(r, H(M_A)), T, S_A; client checks S_A, sends g^pw2 | [`registration::AgentToClient`], [`registration::ShareToAns`] | [`registration::ClientAwaitingAgent::receive_agent`] |
//! | Stage 2 ②: ANS → broker Userlevel, g^pw2 | [`registration::AnsToBroker`] | [`registration::AnsAwaitingShare::receive_share`] |
//! | Stage 2 ③: broker checks, publishes (P_c = g^pw, T_c) | [`registration::Published`] | [`registration::BrokerAwaitingAgentCreated::receive_agent_created`] → [`registration::BrokerAwaitingUserLevel::receive_user_level`] |
//! | (ours) pre-authentication, in the login | [`preauth::PreAuthProof`], [`tickets::LoginRequest`] | [`session::ClientCredential::login_request`], [`tickets::TicketIssuer::check_login`], [`preauth::verify_pw_proof`], [`replay::ReplayCache`] |
//! | Stage 3: service registers P_k = g^r_k, ID_k | [`tickets::ServiceRegistration`], [`tickets::ServiceKeyFile`] | [`tickets::ServiceKey`], [`tickets::ServiceEntry`] |
//! | Stage 4 (ours, Kerberos AS): login → TGT, SK sealed under K_c | [`tickets::LoginReply`], [`tickets::SealedKey`] | [`tickets::TicketIssuer::issue_tgt`] → [`session::ClientCredential::open_login`] → [`session::LoginSession`] |
//! | Stage 4 (Kerberos TGS): Client ticket (V_ac, h_a1, T_a1), Server ticket (V_ak, h_a2, T_a2) | [`tickets::TicketRequest`], [`tickets::TicketReply`], [`tickets::TicketClaims`], [`tickets::Cnf`], [`tickets::EpochSealed`], [`tickets::Jwks`] | [`session::LoginSession::request_ticket`] → [`tickets::TicketIssuer::grant`] ([`tickets::TicketIssuer::open_tgt`], [`tickets::TicketIssuer::issue`], [`epoch`]) |
//! | Stage 5: client checks its ticket, gets C_ck, sends V_ck = EC_Cck(M_request ‖ ticket) | [`session::ServiceRequest`] | [`session::ClientAwaitingTicketReply::receive`] → [`session::ClientSession::request`] → [`session::ClientAwaitingServiceReply`] |
//! | Stage 6: server checks its ticket, gets C_ck | — | [`session::ServiceVerifier::authorize`] ([`tickets::verify_ticket`], [`epoch::ServiceEpochCache`]) |
//! | Stage 7: server opens V_ck, applies the level | [`session::Authorized`], [`session::ServiceReply`] (ours: AP-REP carrying the answer) | [`session::ServiceVerifier::authorize`], [`level::require_level`], [`session::Authorized::reply`], [`session::ClientAwaitingServiceReply::receive_reply`] |
//! | Anonymous users (§5) | [`anon::AnonymousIdentity`] | [`anon::anonymous_id`] |
//!
//! # Deviations from the paper, and why
//!
//! One list, numbered, in `docs/protocols/sso.md` ("Deviations from the
//! paper, and why"); the code names a deviation by its number where it
//! implements it.
//!
//! # Errors
//!
//! [`error::SsoError`], with [`error::SsoError::fault`] telling malformed
//! input, a misbehaving peer (log as a security event), the user, and local
//! bugs apart.

pub mod anon;
pub mod epoch;
pub mod error;
pub mod kdf;
pub mod level;
pub mod preauth;
pub mod primitives;
pub mod registration;
pub mod replay;
pub mod service_frame;
pub mod session;
pub mod tickets;
