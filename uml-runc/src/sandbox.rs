//! A CRI pod's sandbox ("pause") container: it gets no VM, only a placeholder process that
//! holds the pod's network namespace. The pod's containers name that namespace as
//! `/proc/PID/ns/net` of the sandbox's process (containerd's CRI does), so the placeholder
//! must live in the namespace the sandbox's config gives (the CNI's, with the pod's veth),
//! as runc's pause process does, not in the runtime's.

use crate::bundle::Network;
use crate::error::{Error, Result};
use std::os::fd::AsRawFd;

/// The sandbox's network namespace, opened before the placeholder is forked (so a bad path
/// fails `create`), entered by the placeholder.
#[derive(Debug)]
pub enum Held {
    /// No network namespace entry: the runtime's own.
    Host,
    /// A new, empty one.
    New,
    /// The one the config's path names, opened.
    Join(std::fs::File),
}

/// Opens the namespace the config names.
pub fn open(network: &Network) -> Result<Held> {
    Ok(match network {
        Network::Host => Held::Host,
        Network::New => Held::New,
        Network::Join(p) => Held::Join(std::fs::File::open(p).map_err(|e| {
            Error::new(format!(
                "config.json: linux.namespaces[network].path: opening {}: {e}",
                p.display()
            ))
        })?),
    })
}

/// Moves the calling (single-threaded, just forked) process into the namespace.
pub fn enter(held: &Held) -> Result<()> {
    let r = match held {
        Held::Host => return Ok(()),
        // SAFETY: unshare(2) with a flag only; the placeholder has one thread.
        Held::New => unsafe { libc::unshare(libc::CLONE_NEWNET) },
        // SAFETY: setns(2) on a descriptor this process owns; one thread.
        Held::Join(f) => unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) },
    };
    if r != 0 {
        return Err(Error::new(format!(
            "entering the pod's network namespace: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}
