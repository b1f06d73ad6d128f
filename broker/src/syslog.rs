//! Minimal syslog sender (RFC 3164 over /dev/log) for the node-side commands,
//! whose stderr sshd throws away. Best effort: no socket, no log.

use std::os::unix::net::UnixDatagram;

/// Severity.
#[derive(Clone, Copy, Debug)]
pub enum Level {
    Warning = 4,
    Info = 6,
}

/// LOG_AUTHPRIV: authentication messages.
const FACILITY_AUTHPRIV: u8 = 10;

pub fn send(level: Level, message: &str) {
    let Ok(sock) = UnixDatagram::unbound() else { return };
    let clean: String = message.chars().map(|c| if c.is_control() { ' ' } else { c }).take(900).collect();
    let pri = FACILITY_AUTHPRIV * 8 + level as u8;
    let line = format!("<{pri}>dirbroker[{}]: {clean}", std::process::id());
    let _ = sock.send_to(line.as_bytes(), "/dev/log");
}
