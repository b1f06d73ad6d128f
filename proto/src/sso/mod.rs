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
//! 1. **Group.** The paper computes "mod n" with g "of maximal order in
//!    Z_n". We work in the prime-order (q) subgroup of RFC 3526 group 14
//!    (p = 2q + 1) with a fixed generator hashed to the group
//!    ([`primitives::generator`]); every received element passes
//!    `group::decode`'s range and subgroup checks.
//! 2. **Password split is multiplicative.** The paper writes
//!    g^pw = g^pw1 + g^pw2, which does not compose (nothing can be done with
//!    a sum of powers). We use pw = pw1 + pw2 (mod q), so
//!    g^pw = g^pw1 · g^pw2; pw1 is uniform in Z_q.
//! 3. **pw comes from Argon2id** over the password (or the keystroke-
//!    hardened password), salted, 64 MiB / t=3 by default. P_c = g^pw is
//!    public, so anyone can test guesses offline; the KDF cost is the only
//!    defence (see open questions).
//! 4. **S_A's division** is multiplication by the inverse of (K + H(M_A))
//!    mod p. K + H(M_A) is an integer sum, so S_A is in Z_p^*, not in the
//!    subgroup; it is only compared (constant time), never used as an
//!    element. K + H(M_A) ≡ 0 is refused.
//! 5. **ANS's K has a job.** The paper has ANS "keep K" without saying what
//!    for. We use it to bind the client's G2 to the agent: ShareToAns
//!    carries HMAC(HKDF(K), registration id ‖ ID_c ‖ G2 ‖ M_code). Only the
//!    client that opened E_c (and so learnt r) can make it, so a man in the
//!    middle cannot substitute his own G2.
//! 6. **The broker learns M_code from the AMS** ([`registration::AgentCreated`])
//!    so it can check that ANS's Userlevel covers *this* registration, as
//!    the paper's stage 2 ③ requires; ANS also signs its whole message to
//!    the broker (Userlevel, G2, registration id, ID_c).
//! 7. **Encodings.** Every ‖ is a length-prefixed concatenation with a
//!    domain label ([`primitives::Lp`]); M_a, ID_a and M_info are defined
//!    concretely (see [`registration::AgentRequest`], [`registration::MInfo`]).
//!    E_X is ECIES: ephemeral X25519 + HKDF-SHA256 + AES-256-GCM, bound to a
//!    label and the registration id.
//! 8. **Pre-authentication added.** The paper's broker issues tickets to
//!    whoever asks for them. Since it never learns pw, the client proves
//!    knowledge of pw with a Schnorr proof bound to (P_c, ID_c, R,
//!    timestamp, nonce, service), with the 300 s skew and a replay cache
//!    (Kerberos's PA-ENC-TIMESTAMP role).
//! 9. **Ticket keys need a secret.** The paper's K_a1 = H(P_c · g^pw2 ‖ ID_c)
//!    is computable from public values (P_c is published and g^pw2 went
//!    over the wire). We use Diffie–Hellman values: at login between the
//!    broker's fresh α = g^a and P_c, K_c = HKDF(P_c^a; α ‖ ID_c ‖ broker);
//!    for services between the broker's epoch value B_e = g^b_e and P_k,
//!    K_k,e = HKDF(P_k^b_e; B_e ‖ ID_k ‖ e). Only the holder of pw (α^pw)
//!    or r_k (B_e^r_k) can derive them.
//! 10. **One session key, sealed twice (Kerberos).** The paper derives C_ck =
//!     H(α_a1 ⊕ α_a2) on each side, which both sides cannot actually compute
//!     (each sees only its own α) and which anyone seeing both α's could.
//!     The broker draws C_ck at random and seals it for the client under a
//!     key derived from the login session key SK (the TGS-REP client part)
//!     and for the service under HKDF(K_k,e; jti ‖ ID_c) (the server
//!     ticket's `cnf`, RFC 7800 §3.3 shape), like Kerberos's key in
//!     EncTicketPart. The client cannot read the service's copy.
//! 11. **Tickets are EdDSA JWTs** (header {alg: EdDSA, typ: JWT, kid}; kid is
//!     the RFC 7638 thumbprint; JWKS per RFC 8037) with iss, sub = ID_c,
//!     aud = ID_k, iat, nbf, exp, jti, level, and `tkt` (client / service,
//!     so one cannot stand in for the other). Verification pins alg = EdDSA
//!     (RFC 8725 §3.1; `none` and HS256 are refused before any key is
//!     touched), resolves kid in the JWKS, checks iss and aud, and checks
//!     nbf/exp against the caller's `now` with 300 s leeway.
//! 12. **Z and h are dropped; their jobs are kept.** h = H(α, T, V) is an
//!     unkeyed hash of public values: anyone who alters α, T or V recomputes
//!     it, so it adds nothing. Z = KH_K(ticket ‖ …) is a keyed hash of the
//!     ticket under the recipient's key: that job is done by the AEAD tag,
//!     since V_c's AAD is the whole client ticket JWT, and V_k's AAD is
//!     every claim of the server ticket, e and B_e (a cnf moved into another
//!     ticket, or a level raised even by someone holding the signing key,
//!     does not open; the TGT's sealed SK likewise binds every TGT claim).
//!     Integrity against everyone else and non-repudiation
//!     come from the JWS signature, which Z (a symmetric MAC) could never
//!     give. The paper's S_a1 / S_a2 ("α / (Z + α) mod q") serve no check and
//!     are omitted.
//! 13. **Authenticator, replay cache, skew, AP-REP (Kerberos RFC 4120
//!     §3.2.3, §5.5.1).** V_ck = AEAD_{C_ck}(ID_c ‖ jti ‖ ctime ‖ nonce ‖
//!     M_request) with the server ticket's hash as AAD; the service checks
//!     ID_c = sub and jti, |now − ctime| ≤ 300 s, and caches (ID_k, ID_c, jti,
//!     ctime, nonce) until exp + 300 s. It answers AEAD_{C_ck}(ctime ‖ nonce ‖
//!     answer) (direction-labelled AAD, so a request cannot be reflected as a
//!     reply), which the client checks: mutual authentication, which the
//!     paper lacks, and an authenticated answer. The broker's TGS checks its
//!     authenticator (under SK) the same way.
//! 14. **Short exponents where allowed.** a (per login), b_e (per epoch) and
//!     r_k (per service) are 256-bit: both are Diffie–Hellman private keys in a safe-prime
//!     group, where NIST SP 800-56A Rev. 3 §5.6.1.1.4 allows 2·s bits and the
//!     prime-order subgroup leaves no small-order leakage (van Oorschot–Wiener
//!     needs small factors of the order). pw1, r (AMS) and the Schnorr nonce
//!     k are full length: k in particular, because s = k + e·pw with a short
//!     k would let a lattice attack recover pw from a few proofs.
//! 15. **Anonymous users** get "anon-" ‖ base32(HMAC(broker secret, public
//!     info)) at level 1: stable per public info, unlinkable without the
//!     broker secret.
//! 16. **Non-repudiation** rests on Ed25519 signatures (ANS: Userlevel and
//!     AnsToBroker; broker: tickets), not on the paper's "each entity's own
//!     random number".
//! 17. **A fresh α per login, not per ticket (Kerberos AS/TGS split).** The
//!     paper's stage 4 does three 2048-bit exponentiations per ticket pair
//!     (α, P_c^a, P_k^a): 419 tickets/s against 51,516 Ed25519 signatures/s.
//!     The pre-authenticated login (AS exchange) now does the Diffie–Hellman
//!     with P_c once and returns a TGT (an EdDSA JWT with aud = the broker)
//!     plus a login session key SK sealed under K_c; ticket requests (TGS
//!     exchange) present the TGT and an authenticator under SK
//!     (ID_c ‖ TGT jti ‖ ctime ‖ nonce ‖ ID_k, 300 s skew, replay cache) and
//!     get the paper's two tickets with C_ck sealed under SK for the client.
//!     What a fresh α per ticket gave — a key for this ticket only the pw
//!     holder can derive — SK now gives for the whole login: SK itself is
//!     only in the reply that needs α^pw to open, and each ticket's seal
//!     uses its own HKDF(SK; jti) key.
//! 18. **A broker epoch value instead of α on the service side.** The
//!     service's copy of C_ck is sealed under K_k,e = HKDF(P_k^b_e; B_e ‖
//!     ID_k ‖ e) with B_e = g^b_e for the day e = ⌊now / 86400⌋ and
//!     b_e = HKDF(keyring-derived seed; e), so every broker replica with the
//!     same keyring agrees on it and none keeps state ([`epoch`]). Both
//!     sides cache K_k,e per (service, epoch): one exponentiation per
//!     service per day. Each ticket's seal uses HKDF(K_k,e; jti ‖ ID_c),
//!     so the AEAD key is still per ticket. Cost: compromise of r_k or of the
//!     keyring opens every ticket of that epoch (as with a Kerberos service
//!     key), where a per-ticket a bounded it to one ticket.
//! 19. **The TGS authenticates a TGT with K_tgt, not with the signature.**
//!     The TGT's SK is sealed under HKDF(K_tgt; jti ‖ sub) with every claim
//!     as AAD, K_tgt derived from the broker keyring (Kerberos's krbtgt
//!     key): a TGT that opens was made by a broker holding the keyring and
//!     is unaltered. The TGS therefore skips the Ed25519 verification (a
//!     verify costs about two signatures); the signature remains for
//!     clients and third parties.
//! 20. **Our own compact-JWS encoder for signing.** `jsonwebtoken::encode`
//!     rebuilds an aws-lc key pair from PKCS#8 on every call (a second
//!     scalar multiplication per ticket); [`tickets::TicketSigner`] keeps one
//!     parsed key pair. Verification stays with jsonwebtoken, and PyJWT
//!     verifies our tickets in the end-to-end tests.
//! 21. **Anonymous login** proves knowledge of x for a fresh g^x (the
//!     "public information") and gets the pseudonym HMAC(anonymous secret,
//!     g^x) at level 1; only the holder of x can open the TGT's SK.
//! 22. **Replay caches are per broker process.** A login proof or TGS
//!     authenticator replayed to another replica within the skew is
//!     answered, but the answer is sealed under K_c / SK, which only the
//!     original client holds; services keep their own cache (RFC 4120).
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
pub mod session;
pub mod tickets;
