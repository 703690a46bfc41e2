//! Starting the one service exactly as the contract says, and the small policies around it:
//! restart backoff, the stop signal and readiness probes.
//!
//! # How a service is started
//!
//! [`spawn`](fn@spawn) does everything that can fail in an interesting way, or that allocates, *before*
//! `fork`: C strings for argv, env and workdir, the capability masks, the pipes, `/dev/null`.
//! Between `fork` and `execve` the child then only makes raw system calls. That is not a matter
//! of taste: PID 1 may have other threads (and the tests certainly do), and a forked child of a
//! threaded process owns a copy of memory in which another thread may have held the malloc
//! lock, a logger lock or a stdio lock at the moment of the fork. Only async-signal-safe calls
//! are safe there, so no allocation, no `log`, no `format!`, no panics.
//!
//! A failure in the child is not reported by an exit code (a silent 127 tells the operator
//! nothing) but through a close-on-exec "report" pipe: the child writes which step failed and
//! its errno, the parent reads it. End of file without a report means `execve` succeeded (the
//! kernel closed the pipe as part of the exec). This is the classic design of
//! `posix_spawn`, Python's `_posixsubprocess` and Rust's own `std::process`.
//!
//! | part | job |
//! | --- | --- |
//! | [`spawn`](mod@spawn) | fork/exec plumbing: pipes, the report of a failed step |
//! | [`error`] | why the service could not be started |
//! | `prepared` | what the child needs, allocated and checked before `fork` |
//! | `report` | the report pipe's message: the failed step and its errno |
//! | `child` | the child between `fork` and `execve` |
//! | [`restart`] | exit kinds, the restart policy, its [`Backoff`] |
//! | [`stop`] | the stop signal |
//! | [`readiness`] | `tcp` and `notify` readiness |
//! | [`liveness`] | the liveness check while the service runs |
//! | [`oom`] | whether the guest's OOM killer ended it (the kernel log) |

mod child;
pub mod error;
pub mod liveness;
pub mod oom;
mod prepared;
pub mod readiness;
mod report;
pub mod restart;
pub mod spawn;
pub mod stop;

pub use crate::backoff::Backoff;
pub use error::SpawnError;
pub use prepared::SpawnOptions;
pub use readiness::{
    notify_chunk_is_ready, read_notify, tcp_ready, tcp_ready_within, Notify, TCP_PROBE_TIMEOUT,
};
pub use restart::{should_restart, ExitKind};
pub use spawn::{spawn, Child};
pub use stop::stop_signal;
