//! Metrics of every appliance (issue 30): [`sample`] takes a snapshot (the launcher's view
//! from each state directory, the host's from /proc: [`procfs`]), [`text`] writes it in the
//! Prometheus text format, [`textfile`] puts it in node_exporter's textfile directory, one
//! file per appliance, and [`serve`] answers `GET /metrics` for a direct scrape.

pub mod procfs;
pub mod rates;
pub mod sample;
pub mod serve;
pub mod text;
pub mod textfile;

pub use sample::{collect, Digests, Sample};
