//! Who is at fault: the one taxonomy every error of the project maps to
//! (`fn fault(&self) -> Fault` on each error type), and from which each
//! boundary decides once what the other side sees: the CLI's exit code,
//! the HTTP status of the broker's routes, the code of a wire `Refusal`.
//! A peer never receives our own error text: for the faults that are ours
//! ([`Fault::is_ours`]) it gets [`Fault::public_reason`] instead.

/// Who is at fault, and so what to do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Bytes or fields that do not parse (from a person or a peer).
    Malformed,
    /// A peer sent something well-formed but wrong: forged, tampered,
    /// replayed, out of order. A security event.
    PeerMisbehaved,
    /// A peer speaks another protocol version or lacks a feature.
    PeerIncompatible,
    /// A person's request that is refused: wrong password or OTP, too low a
    /// level, a weak parameter, something that does not exist.
    User,
    /// Access denied by policy or by the directory.
    Denied,
    /// Something we depend on is unavailable (directory, broker, network):
    /// retry later.
    Unavailable,
    /// Our configuration or credentials are wrong or missing.
    Config,
    /// Our own environment failed (disk, file system).
    Local,
    /// Our own bug, or a library used wrongly by our code.
    Bug,
}

impl Fault {
    /// The fault is on our side: the peer learns only [`Fault::public_reason`].
    pub fn is_ours(self) -> bool {
        matches!(self, Fault::Unavailable | Fault::Config | Fault::Local | Fault::Bug)
    }

    /// The peer is at fault: log it as a security event.
    pub fn blames_peer(self) -> bool {
        matches!(self, Fault::Malformed | Fault::PeerMisbehaved | Fault::PeerIncompatible)
    }

    /// Worth retrying later without changing anything.
    pub fn is_retryable(self) -> bool {
        matches!(self, Fault::Unavailable)
    }

    /// The code a wire `Refusal` carries (stable: never renumber).
    pub fn code(self) -> u8 {
        match self {
            Fault::Malformed => 1,
            Fault::PeerMisbehaved => 2,
            Fault::PeerIncompatible => 3,
            Fault::User => 4,
            Fault::Denied => 5,
            Fault::Unavailable => 6,
            Fault::Config => 7,
            Fault::Local => 8,
            Fault::Bug => 9,
        }
    }

    /// The fault a refusal code names; unknown codes are the sender's trouble.
    pub fn from_code(code: u8) -> Fault {
        match code {
            1 => Fault::Malformed,
            2 => Fault::PeerMisbehaved,
            3 => Fault::PeerIncompatible,
            4 => Fault::User,
            5 => Fault::Denied,
            6 => Fault::Unavailable,
            7 => Fault::Config,
            8 => Fault::Local,
            _ => Fault::Bug,
        }
    }

    /// The HTTP status of an answer refused for this fault.
    pub fn http_status(self) -> u16 {
        match self {
            Fault::Malformed => 400,
            Fault::PeerMisbehaved => 401,
            Fault::User | Fault::Denied => 403,
            Fault::PeerIncompatible => 400,
            Fault::Unavailable => 503,
            Fault::Config | Fault::Local | Fault::Bug => 500,
        }
    }

    /// What a peer is told when the fault is ours.
    pub fn public_reason(self) -> &'static str {
        match self {
            Fault::Malformed => "malformed message",
            Fault::PeerMisbehaved => "refused",
            Fault::PeerIncompatible => "incompatible peer",
            Fault::User => "refused",
            Fault::Denied => "access denied",
            Fault::Unavailable => "a service this one depends on is unavailable; retry later",
            Fault::Config | Fault::Local | Fault::Bug => "internal error (see the log on this side)",
        }
    }

    /// The text a peer may see for an error with this fault: the error's own
    /// text when it is about what the peer sent or asked, else the public reason.
    pub fn for_peer(self, error: &dyn std::fmt::Display) -> String {
        if self.is_ours() { self.public_reason().to_string() } else { error.to_string() }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Fault::Malformed => "malformed",
            Fault::PeerMisbehaved => "peer misbehaved",
            Fault::PeerIncompatible => "peer incompatible",
            Fault::User => "refused",
            Fault::Denied => "access denied",
            Fault::Unavailable => "unavailable",
            Fault::Config => "configuration",
            Fault::Local => "local",
            Fault::Bug => "internal",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Fault;

    const ALL: [Fault; 9] = [
        Fault::Malformed,
        Fault::PeerMisbehaved,
        Fault::PeerIncompatible,
        Fault::User,
        Fault::Denied,
        Fault::Unavailable,
        Fault::Config,
        Fault::Local,
        Fault::Bug,
    ];

    #[test]
    fn codes_round_trip_and_are_distinct() {
        for f in ALL {
            assert_eq!(Fault::from_code(f.code()), f);
        }
        let mut codes: Vec<u8> = ALL.iter().map(|f| f.code()).collect();
        codes.dedup();
        assert_eq!(codes.len(), ALL.len());
        assert_eq!(Fault::from_code(0), Fault::Bug);
        assert_eq!(Fault::from_code(200), Fault::Bug);
    }

    /// Our own trouble never reaches a peer as text; theirs does.
    #[test]
    fn peers_never_see_our_error_text() {
        let secret = "cannot open /etc/dirbroker/keyring: permission denied";
        for f in ALL {
            let shown = f.for_peer(&secret);
            assert_eq!(shown.contains("keyring"), !f.is_ours(), "{f}: {shown}");
        }
    }
}
