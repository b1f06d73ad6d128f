//! Exit codes, defined once for both binaries (`dirbroker`, `dirbroker-ssh`).
//!
//! | code | variant       | meaning                                                        |
//! |------|---------------|----------------------------------------------------------------|
//! | 0    | `Ok`          | success (a node command may answer with no lines)              |
//! | 1    | `Failed`      | refused or not found: wrong password, check failed, no entry   |
//! | 2    | `Usage`       | bad input or usage: fix the command line or the file           |
//! | 3    | `Unavailable` | the directory (or the broker) is unreachable: retry later      |
//! | 4    | `Config`      | configuration error: fix the configuration file or keyring     |
//! | 5    | `Denied`      | access denied by the directory                                 |

use std::process::ExitCode;

use dirbroker::directory::DirError;
use dirbroker_proto::fault::Fault;

/// What a command's exit status tells the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// Refused or not found.
    Failed = 1,
    /// Bad input or usage.
    Usage = 2,
    /// The directory or the broker is unreachable (retry later).
    Unavailable = 3,
    /// Configuration error.
    Config = 4,
    /// Access denied by the directory.
    Denied = 5,
}

impl Exit {
    /// The numeric status.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// For an HTTP answer that is not a success: the broker's own failure
    /// (5xx) is worth retrying; a refusal (4xx) is not.
    pub fn from_http_status(server_error: bool) -> Exit {
        if server_error { Exit::Unavailable } else { Exit::Failed }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}

/// The one mapping from who is at fault to an exit code.
impl From<Fault> for Exit {
    fn from(f: Fault) -> Exit {
        match f {
            Fault::Malformed => Exit::Usage,
            Fault::Unavailable => Exit::Unavailable,
            Fault::Config => Exit::Config,
            Fault::Denied => Exit::Denied,
            Fault::User | Fault::PeerMisbehaved | Fault::PeerIncompatible | Fault::Local | Fault::Bug => Exit::Failed,
        }
    }
}

/// A directory error, the same for every command.
impl From<&DirError> for Exit {
    fn from(e: &DirError) -> Exit {
        e.fault().into()
    }
}

/// The exit-code paragraph of `--help`.
pub const HELP: &str = "\
Exit codes: 0 success, 1 failed (not found, check failed, wrong password),
2 bad input or usage, 3 directory unavailable (retry later), 4 configuration
error, 5 access denied by the directory.

Secrets (passwords) are read from files or standard input, never from the
command line. Set DIRBROKER_LOG=debug for more detail on standard error.";
