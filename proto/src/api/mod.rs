//! The JSON contracts of `dirbroker serve` and of the agents' HTTPS routes,
//! one definition each: the server answers with these types and every
//! client (the agents, the CLI) reads them with the same types.
//!
//! | route | who may call | request | answer |
//! |---|---|---|---|
//! | `GET /healthz` | anyone | – | [`machines::Health`] |
//! | `GET /v1/pki/ca` | anyone | – | [`machines::PkiCa`] |
//! | `GET /v1/dc/{did}` | any broker-issued certificate | – | [`machines::DcEntry`] |
//! | `GET /v1/dc/credentials` | data centers | – | [`machines::DcCredentials`] |
//! | `POST /v1/otp/verify` | data centers | [`machines::OtpVerifyRequest`] | [`machines::OtpVerifyReply`] |
//! | `GET /v1/sso/params` | anyone | – | [`sso::ParamsReply`] |
//! | `POST /v1/sso/register` | anyone with an invitation | [`sso::RegisterRequest`] | [`sso::RegisterReply`] |
//! | `POST /v1/agents` (AMS) | the broker | [`sso::CreateAgentRequest`] | `AgentCreation` |
//! | `POST /v1/mcode` (ANS) | the broker | [`sso::McodeRequest`] | – |
//! | `POST /v1/share` (ANS) | the client | [`sso::ShareRequest`] | `Published` |
//! | `POST /v1/sso/userlevel` | the ANS | [`sso::UserLevelRequest`] | `Published` |
//!
//! Every refusal is [`ErrorBody`] with a status that says whose fault it is:
//! 4xx the caller's, 503 retry later, 500 ours (details only in our log).

pub mod machines;
pub mod sso;

use serde::{Deserialize, Serialize};

/// The body of every error answer: `{"error": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for a person to read; never our internal error text.
    pub error: String,
}
