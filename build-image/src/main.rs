//! `build-image RECIPE.json -o IMAGE`: builds an appliance root image and its manifest.

#![deny(missing_debug_implementations)]
#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless,
    clippy::exit,
    clippy::tests_outside_test_module
)]

use build_image::archive::ArchiveError;
use build_image::cli::Args;
use build_image::oci_out::OciOutput;
use build_image::{recipe, Error, Options, Recipe};
use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit statuses: the build failed (a package, a tool, the file system), the input is bad
/// (the recipe, the command line: fix it and run again), the archive cannot be reached (run
/// again later; the same status as `--outdated`'s).
const FAILED: u8 = 1;
const BAD_INPUT: u8 = 2;
const UNREACHABLE: u8 = 4;

/// A failure: what went wrong, and which kind of exit status it gets.
#[derive(Debug)]
struct Failure(u8, Error);

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure(FAILED, e)
    }
}

impl From<ArchiveError> for Failure {
    fn from(e: ArchiveError) -> Failure {
        match e {
            ArchiveError::Unreachable(e) => Failure(UNREACHABLE, e),
            ArchiveError::Failed(e) => Failure(FAILED, e),
        }
    }
}

/// The input was at fault.
fn bad_input(e: Error) -> Failure {
    Failure(BAD_INPUT, e)
}

fn fail(code: u8, lines: &[String]) -> ExitCode {
    for l in lines {
        eprintln!("build-image: {l}");
    }
    ExitCode::from(code)
}

/// What is in the image: its packages (the SBOM), its digest, lock and signature.
fn summary(b: &build_image::Built) {
    println!(
        "build-image: {} packages (SBOM {}):",
        b.packages.len(),
        b.sbom.display()
    );
    for p in &b.packages {
        let l = &p.locked;
        println!(
            "  {:<24} {:<24} source {:<16} {}",
            l.package, l.version, l.source, p.license
        );
    }
    if let Some(l) = &b.lock_written {
        println!("build-image: wrote the lock {}", l.display());
    }
    println!("build-image: digest {} (image and manifest)", b.digest);
    match &b.signature {
        Some(s) => println!("build-image: signed: {}", s.display()),
        None => println!("build-image: not signed (--sign-key KEY signs it)"),
    }
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { BAD_INPUT } else { 0 });
        }
    };
    if let Some(word) = args.recipe.as_deref().and_then(Path::to_str) {
        if word == "help" {
            let _ = <Args as clap::CommandFactory>::command().print_help();
            return ExitCode::SUCCESS;
        }
        if !Path::new(word).exists() && !word.ends_with(".json") {
            eprintln!(
                "build-image: unknown command '{word}', and no such recipe: build-image takes \
                 RECIPE.json -o IMAGE (see build-image --help)"
            );
            return ExitCode::from(BAD_INPUT);
        }
    }
    if args.schema {
        print!("{}", recipe::schema_v1_text());
        return ExitCode::SUCCESS;
    }
    if args.outdated {
        return outdated(&args);
    }
    let result = match &args.new_key {
        Some(prefix) => new_key(prefix).map_err(Failure::from),
        None => run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, e)) => fail(code, &e.0),
    }
}

/// `--outdated`: the lock's packages with a newer version in the archive; exit status 0
/// none, 3 some, 4 the archive cannot be reached, 2 no recipe, 1 another error.
fn outdated(args: &Args) -> ExitCode {
    use build_image::outdated::{self, OutdatedError};
    let Some(recipe) = &args.recipe else {
        return fail(
            BAD_INPUT,
            &["--outdated needs the recipe: build-image RECIPE.json --outdated".into()],
        );
    };
    let lock_path = args
        .lock
        .clone()
        .unwrap_or_else(|| build_image::lock::lock_path(recipe));
    let image_sbom = build_image::build::sbom_path(recipe);
    let (lock_path, lock) = if image_sbom.exists() {
        (image_sbom.clone(), read_sbom(&image_sbom))
    } else {
        (lock_path.clone(), read_lock(&lock_path))
    };
    let lock = match lock {
        Ok(l) => l,
        Err(e) => return fail(FAILED, &e.0),
    };
    let cache_dir = args
        .cache_dir
        .clone()
        .unwrap_or_else(build_image::archive::default_cache_dir);
    let behind = build_image::archive::Cache::open(&cache_dir)
        .map_err(|e| OutdatedError::Apt(e.0.join("; ")))
        .and_then(|c| outdated::outdated(&c, &lock));
    match behind {
        Ok(b) => {
            print_outdated(&lock_path, &b, args.json);
            ExitCode::from(if b.is_empty() { 0 } else { 3 })
        }
        Err(e @ OutdatedError::Unreachable(_)) => {
            eprintln!("build-image: {}: {e}", lock_path.display());
            ExitCode::from(4)
        }
        Err(e) => fail(FAILED, &[format!("{}: {e}", lock_path.display())]),
    }
}

fn read_sbom(path: &Path) -> Result<build_image::lock::Lock, Error> {
    let text = std::fs::read(path).map_err(|e| Error::one(format!("{}: {e}", path.display())))?;
    build_image::changes::sbom_lock(&text)
        .map_err(|e| Error::one(format!("{}: {e}", path.display())))
}

/// `--changes-from OLD`: the package changes from OLD's SBOM to the image just built.
fn print_changes(old: &Path, b: &build_image::Built) -> Result<(), Error> {
    let lock = read_sbom(&build_image::build::sbom_path(old))?;
    let new: Vec<_> = b.packages.iter().map(|p| p.locked.clone()).collect();
    let changes = build_image::changes::changes(&lock.packages, &new);
    println!(
        "build-image: {} package change(s) from {}{}",
        changes.len(),
        old.display(),
        if changes.is_empty() { "" } else { ":" }
    );
    for c in changes {
        println!("  {}", c.line());
    }
    Ok(())
}

fn read_lock(path: &Path) -> Result<build_image::lock::Lock, Error> {
    let text = std::fs::read(path).map_err(|e| {
        Error::one(format!(
            "{}: {e} (a recipe's lock is RECIPE.lock.json, or --lock FILE)",
            path.display()
        ))
    })?;
    build_image::lock::parse(&text).map_err(|p| {
        Error(
            p.0.iter()
                .map(|l| format!("{}: {l}", path.display()))
                .collect(),
        )
    })
}

fn print_outdated(lock: &Path, behind: &[build_image::outdated::Behind], json: bool) {
    if json {
        let v = serde_json::json!({"lock": lock, "behind": behind});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return;
    }
    if behind.is_empty() {
        println!(
            "{}: every package is at the archive's version",
            lock.display()
        );
        return;
    }
    let security = behind.iter().filter(|b| b.security).count();
    println!(
        "{}: {} package(s) behind the archive, {security} from a security suite:",
        lock.display(),
        behind.len()
    );
    for b in behind {
        let mark = if b.security { "SECURITY" } else { "" };
        println!(
            "  {:<24} {:<24} -> {:<24} {mark}",
            b.package, b.locked, b.candidate
        );
    }
}

/// `--new-key PREFIX`: writes a key pair.
fn new_key(prefix: &Path) -> Result<(), Error> {
    let (sk, pk) = build_image::sign::new_key(prefix)?;
    println!(
        "build-image: wrote the secret key {} and the public key {} (trust it in \
         host-launch's trust.json)",
        sk.display(),
        pk.display()
    );
    Ok(())
}

/// Reads the recipe, then checks (`--check`) or builds.
fn run(args: Args) -> Result<(), Failure> {
    let Some(recipe_path) = args.recipe.clone() else {
        return Err(bad_input(Error::one(
            "a recipe is needed: build-image RECIPE.json -o IMAGE",
        )));
    };
    let recipe = read_recipe(&recipe_path).map_err(bad_input)?;
    let check = args.check;
    let changes_from = args.changes_from.clone();
    let opts = options(args, &recipe_path)?;
    if check {
        check_only(&recipe, &opts)
    } else {
        build_image(&recipe, &opts, changes_from.as_deref())
    }
}

/// The recipe, each problem prefixed with its file.
fn read_recipe(path: &Path) -> Result<Recipe, Error> {
    let text = std::fs::read(path)
        .map_err(|e| Error::one(format!("{}: cannot read the recipe: {e}", path.display())))?;
    recipe::parse(&text).map_err(|problems| {
        Error(
            problems
                .0
                .iter()
                .map(|p| format!("{}: {p}", path.display()))
                .collect(),
        )
    })
}

/// The build's options from the command line (defaults beside the recipe).
fn options(args: Args, recipe_path: &Path) -> Result<Options, Failure> {
    let output = match (&args.output, args.check) {
        (Some(o), _) => o.clone(),
        (None, true) => PathBuf::from("/nonexistent/check-only.img"),
        (None, false) => return Err(bad_input(Error::one("-o IMAGE is needed"))),
    };
    let init = match args.init {
        Some(p) => p,
        None => build_image::default_guest_init()?,
    };
    let mut opts = Options::new(output, init);
    if let Some(d) = args.modules_dir {
        opts.modules_dir = d;
    }
    opts.base_dir = recipe_path
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    opts.lock = Some(
        args.lock
            .unwrap_or_else(|| build_image::lock::lock_path(recipe_path)),
    );
    opts.update_lock = args.update_lock;
    if let Some(d) = args.cache_dir {
        opts.cache_dir = d;
    }
    // A key configured for the host's builds signs them without repeating it each time.
    opts.sign_key = args.sign_key.or_else(|| {
        std::env::var_os("IMAGE_BUILDER_SIGN_KEY")
            .filter(|k| !k.is_empty())
            .map(PathBuf::from)
    });
    if let Some(e) = args.epoch {
        opts.epoch = e;
    }
    opts.uuid = args.uuid;
    opts.oci = OciOutput {
        layout: args.oci_layout,
        archive: args.oci_archive,
        gzip: args.oci_gzip,
    };
    Ok(opts)
}

/// `--check`: what would go into the image, one entry a line.
fn check_only(recipe: &Recipe, opts: &Options) -> Result<(), Failure> {
    let src = build_image::build::sources(recipe, opts)?;
    let contents = build_image::contents(recipe, opts, &src)?;
    for (path, e) in &contents.layout.entries {
        println!("{path}\t{:o}\t{}:{}\t{}", e.mode, e.uid, e.gid, e.origin);
    }
    Ok(())
}

fn build_image(
    recipe: &Recipe,
    opts: &Options,
    changes_from: Option<&Path>,
) -> Result<(), Failure> {
    build_image::build::check_epoch(opts)?;
    let src = build_image::build::sources(recipe, opts)?;
    let b = build_image::build::build_from(recipe, opts, &src)?;
    summary(&b);
    println!(
        "build-image: wrote {} ({} bytes, {:.1} MiB; {} entries, {:.1} MiB of files) and {}",
        b.image.display(),
        b.size,
        mib(b.size),
        b.entries,
        mib(b.content_bytes),
        b.manifest.display()
    );
    if let Some(old) = changes_from {
        print_changes(old, &b)?;
    }
    if let Some(w) = &b.oci {
        println!(
            "build-image: wrote the OCI image (manifest {}, config {})",
            w.manifest, w.config
        );
    }
    Ok(())
}

/// Bytes in MiB, for the summary.
fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}
