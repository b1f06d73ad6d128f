//! The JSON bodies of SSO registration (seed 002, stages 1–2) on the
//! broker's, the AMS's and the ANS's HTTPS routes; the protocol messages
//! inside are [`crate::sso::registration`]'s. Served by
//! `dirbroker::serve::sso_register` and the agents, sent by `dirbroker
//! register`.

use serde::{Deserialize, Serialize};

use crate::sso::kdf::KdfParams;
use crate::sso::level::Level;
use crate::sso::primitives::{Bytes, b64};
use crate::sso::registration::{
    AgentRequest, AgentToClient, AnsToBroker, McodeToAns, Published, RegistrationRequest, ShareToAns,
};

/// How long the sealed state (and ANS's pending agent) stays usable.
pub const STATE_LIFETIME_S: i64 = 600;
/// The agent code the broker asks the AMS to run (part of M_a).
pub const AGENT_CODE: &str = "dirbroker-registration-v1";

/// `GET /v1/sso/params`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParamsReply {
    /// The Argon2id parameters the client must use for pw.
    pub kdf: KdfParams,
    /// ID_a, the broker's identity.
    pub broker: String,
}

/// `POST /v1/sso/register`, client → broker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The pre-stage message.
    pub registration: RegistrationRequest,
    /// The one-time invitation code from `dirbroker user invite`.
    pub invitation: String,
    /// The KDF input is a keystroke-hardened password (recorded on the user).
    #[serde(default)]
    pub keystroke_hardening: bool,
}

/// The broker's answer to `POST /v1/sso/register`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterReply {
    /// Stage 2 ①: M_code, E_c(r, H(M_A)), T_AMS, S_A.
    pub agent: AgentToClient,
    /// Where to send the share (ANS's `POST /v1/share`).
    pub ans_url: String,
    /// The broker's sealed state; give it back unchanged through ANS.
    pub state: String,
    /// Unix time after which the state is refused.
    pub expires: i64,
}

/// `POST /v1/agents`, broker → AMS.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAgentRequest {
    /// Stage 1 ①.
    pub agent_request: AgentRequest,
    /// ANS's X25519 key (E_ANS) from its LDAP `Agent` entry.
    pub ans_box_key: Bytes,
}

/// `POST /v1/mcode`, broker → ANS.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McodeRequest {
    /// Stage 1 ②'s message to ANS (relayed by the broker).
    pub mcode: McodeToAns,
    /// The level the invitation grants.
    pub level: Level,
}

/// `POST /v1/share`, client → ANS.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    /// Stage 2 ①(가).
    pub share: ShareToAns,
    /// The broker's sealed state from [`RegisterReply`].
    pub state: String,
}

/// `POST /v1/sso/userlevel`, ANS → broker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserLevelRequest {
    /// Stage 2 ②.
    pub ans_to_broker: AnsToBroker,
    /// The broker's sealed state, as the client passed it on.
    pub state: String,
}

/// `dirbrokerPasswordKdf` on a user: the public salt and Argon2id parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordKdf {
    /// Always "argon2id".
    pub alg: String,
    /// The salt.
    pub salt: Bytes,
    /// The parameters.
    #[serde(flatten)]
    pub params: KdfParams,
}

impl PasswordKdf {
    /// The attribute value (JSON).
    pub fn to_value(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses the attribute value.
    pub fn parse(value: &[u8]) -> Option<PasswordKdf> {
        serde_json::from_slice::<PasswordKdf>(value).ok().filter(|k| k.alg == "argon2id")
    }
}

/// For `Published` answers that must be shown as JSON elsewhere.
pub fn published_json(p: &Published) -> serde_json::Value {
    serde_json::json!({
        "uid": p.id_c,
        "p_c": b64(p.p_c.as_slice()),
        "t_c": p.t_c,
        "level": p.level.as_u8(),
        "kdf": { "salt": b64(p.salt.as_slice()), "m_cost_kib": p.kdf.m_cost_kib, "t_cost": p.kdf.t_cost, "p_cost": p.kdf.p_cost },
    })
}
