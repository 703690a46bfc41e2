//! `build-image RECIPE.json -o IMAGE`: builds an appliance root image and its manifest.

#![deny(missing_debug_implementations)]
#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless,
    clippy::exit,
    clippy::tests_outside_test_module
)]

use clap::Parser;
use image_builder::cli::Args;
use image_builder::oci_out::OciOutput;
use image_builder::{build, recipe, Error, Options, Recipe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit statuses: the build failed (a package, a tool, the file system), the input is bad
/// (the recipe, the command line: fix it and run again).
const FAILED: u8 = 1;
const BAD_INPUT: u8 = 2;

/// A failure: what went wrong, and which kind of exit status it gets.
#[derive(Debug)]
struct Failure(u8, Error);

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure(FAILED, e)
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
fn summary(b: &image_builder::Built) {
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
    let result = match &args.new_key {
        Some(prefix) => new_key(prefix).map_err(Failure::from),
        None => run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, e)) => fail(code, &e.0),
    }
}

/// `--new-key PREFIX`: writes a key pair.
fn new_key(prefix: &Path) -> Result<(), Error> {
    let (sk, pk) = image_builder::sign::new_key(prefix)?;
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
    let opts = options(args, &recipe_path)?;
    if check {
        Ok(check_only(&recipe, &opts)?)
    } else {
        Ok(build_image(&recipe, &opts)?)
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
        None => image_builder::default_guest_init()?,
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
            .unwrap_or_else(|| image_builder::lock::lock_path(recipe_path)),
    );
    opts.update_lock = args.update_lock;
    if let Some(d) = args.cache_dir {
        opts.cache_dir = d;
    }
    opts.sign_key = args.sign_key;
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
fn check_only(recipe: &Recipe, opts: &Options) -> Result<(), Error> {
    let src = image_builder::build::sources(recipe, opts)?;
    let contents = image_builder::contents(recipe, opts, &src)?;
    for (path, e) in &contents.layout.entries {
        println!("{path}\t{:o}\t{}:{}\t{}", e.mode, e.uid, e.gid, e.origin);
    }
    Ok(())
}

fn build_image(recipe: &Recipe, opts: &Options) -> Result<(), Error> {
    let b = build(recipe, opts)?;
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
