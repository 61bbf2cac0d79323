//! `sd_notify`: readiness and stopping reported to systemd through `$NOTIFY_SOCKET`.
//!
//! Written by hand (a datagram to a Unix socket, abstract when the path starts with `@`): the
//! protocol is one `sendto`, and the `sd-notify`/`libsystemd` crates add nothing else we use.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `state` (e.g. `"READY=1"`) to `$NOTIFY_SOCKET`; returns whether a message was sent.
/// Without `$NOTIFY_SOCKET` (not under systemd) it does nothing.
///
/// ```
/// // Outside systemd this is a no-op.
/// std::env::remove_var("NOTIFY_SOCKET");
/// assert!(!nlkit_mirror::sd_notify("READY=1").unwrap());
/// ```
pub fn sd_notify(state: &str) -> std::io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let path = path.to_string_lossy().into_owned();
    let addr = if let Some(name) = path.strip_prefix('@') {
        SocketAddr::from_abstract_name(name.as_bytes())?
    } else {
        SocketAddr::from_pathname(&path)?
    };
    let sock = UnixDatagram::unbound()?;
    sock.send_to_addr(state.as_bytes(), &addr)?;
    Ok(true)
}
