//! `package-files DIR`: writes the Debian package's generated files (man pages, shell
//! completions, the systemd unit and generator) under DIR, as they lie in the package.

#![deny(missing_debug_implementations)]
#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless,
    clippy::exit,
    clippy::tests_outside_test_module
)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// A generated file that could not be written, with the path it was going to.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
struct WriteError {
    path: PathBuf,
    source: std::io::Error,
}

fn write(root: &Path, f: &package_files::File) -> Result<(), WriteError> {
    let path = root.join(&f.path);
    let what = |source| WriteError {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(what)?;
    }
    std::fs::write(&path, &f.bytes).map_err(what)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(f.mode)).map_err(what)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [root] = args.as_slice() else {
        eprintln!(
            "usage: package-files DIR (the package's root to write the generated files under)"
        );
        return ExitCode::from(2);
    };
    let files = match package_files::files() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("package-files: rendering a man page: {e}");
            return ExitCode::FAILURE;
        }
    };
    for f in &files {
        if let Err(e) = write(Path::new(root), f) {
            eprintln!("package-files: {e}");
            return ExitCode::FAILURE;
        }
    }
    println!("package-files: {} files under {root}", files.len());
    ExitCode::SUCCESS
}
