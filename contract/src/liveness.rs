//! The service's liveness check (`service.liveness`): what tells a service that still runs
//! but no longer works (hung, deadlocked) from one that works. Readiness is asked once, until
//! the service first answers; liveness is asked for as long as it runs, and
//! `failure_threshold` failures in a row make guest-init restart it. Pure: no I/O.

use crate::addr::parse_ip;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// `service.liveness`: a check repeated every `interval_ms` once the service is ready.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Liveness {
    pub check: LivenessCheck,
    /// Time between the end of one check and the start of the next.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// How long one check may take before it counts as failed.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Failures in a row that make guest-init restart the service.
    #[serde(default = "default_failure_threshold")]
    pub failure_threshold: u32,
}

/// What one check does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum LivenessCheck {
    /// A TCP connection to this port on the guest succeeds (closed at once).
    Tcp {
        port: u16,
        /// Address to connect to; default `127.0.0.1`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
    },
    /// This program of the image exits 0 (run as guest root, no environment but `PATH`).
    Exec { argv: Vec<String> },
}

fn default_interval_ms() -> u64 {
    10_000
}

fn default_timeout_ms() -> u64 {
    2_000
}

fn default_failure_threshold() -> u32 {
    3
}

/// The check as guest-init runs it, its address typed (see [`crate::checked`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Tcp(SocketAddr),
    Exec(Vec<String>),
}

/// The typed target of a check; the error is the address's problem (validation reports it).
pub fn target(l: &Liveness) -> Result<Target, crate::addr::AddrError> {
    match &l.check {
        LivenessCheck::Exec { argv } => Ok(Target::Exec(argv.clone())),
        LivenessCheck::Tcp { port, address } => {
            let ip = match address {
                Some(a) => parse_ip(a)?,
                None => IpAddr::V4(Ipv4Addr::LOCALHOST),
            };
            Ok(Target::Tcp(SocketAddr::new(ip, *port)))
        }
    }
}
