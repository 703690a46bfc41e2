//! The kernels a benchmark compares, side by side in one run: the project's (`kernel/build`)
//! and Debian's `linux.uml`, or any other UML kernel by its path.

use std::path::PathBuf;

/// `--kernels project,debian` (the default) as (label, path). A kernel that is asked for but
/// missing is an error, not a silent skip.
pub fn bench_kernels(wanted: &str) -> Vec<(String, PathBuf)> {
    wanted
        .split(',')
        .map(|k| {
            let path = match k {
                "project" => crate::workspace_root().join("build/kernel/linux"),
                "debian" => PathBuf::from("/usr/bin/linux.uml"),
                other => PathBuf::from(other),
            };
            assert!(
                path.is_file(),
                "kernel {k}: {} is missing (kernel/build builds the project's; scripts/setup \
                 installs Debian's)",
                path.display()
            );
            (k.to_string(), path)
        })
        .collect()
}
