//! One file per subcommand (`run` is [`crate::launch::run`], the foreground launcher itself). They
//! call the lifecycle code below them ([`crate::lifecycle`], [`crate::launch::run`]); none calls
//! another, except `list`, which shows what `status` does, shorter,
//! and `backup`, which packs what `snapshot` copies.

pub mod backup;
pub mod check;
pub mod events;
pub mod forget;
pub mod list;
pub mod logs;
pub mod metrics;
pub mod outdated;
pub mod restart;
pub mod restore;
pub mod snapshot;
pub mod start;
pub mod stats;
pub mod status;
pub mod stop;
pub mod systemd;
pub mod top;
pub mod update;
pub mod upgrade;
pub mod view;
