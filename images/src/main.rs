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
use image_builder::{build, recipe, Options};
use std::path::PathBuf;
use std::process::ExitCode;

fn fail(lines: &[String]) -> ExitCode {
    for l in lines {
        eprintln!("build-image: {l}");
    }
    ExitCode::from(1)
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
    let args = Args::parse();
    if args.schema {
        print!("{}", recipe::schema_v1_text());
        return ExitCode::SUCCESS;
    }
    if let Some(prefix) = &args.new_key {
        return match image_builder::sign::new_key(prefix) {
            Ok((sk, pk)) => {
                println!(
                    "build-image: wrote the secret key {} and the public key {} (trust it in \
                     host-launch's trust.json)",
                    sk.display(),
                    pk.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e.0),
        };
    }
    let Some(recipe_path) = args.recipe else {
        return fail(&["a recipe is needed: build-image RECIPE.json -o IMAGE".into()]);
    };
    let text = match std::fs::read(&recipe_path) {
        Ok(t) => t,
        Err(e) => return fail(&[format!("{}: {e}", recipe_path.display())]),
    };
    let recipe = match recipe::parse(&text) {
        Ok(r) => r,
        Err(problems) => {
            let lines: Vec<String> = problems
                .iter()
                .map(|p| format!("{}: {p}", recipe_path.display()))
                .collect();
            return fail(&lines);
        }
    };
    let output = match (&args.output, args.check) {
        (Some(o), _) => o.clone(),
        (None, true) => PathBuf::from("/nonexistent/check-only.img"),
        (None, false) => return fail(&["-o IMAGE is needed".into()]),
    };
    let init = match args.init {
        Some(p) => p,
        None => match image_builder::default_guest_init() {
            Ok(p) => p,
            Err(e) => return fail(&e.0),
        },
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
            .unwrap_or_else(|| image_builder::lock::lock_path(&recipe_path)),
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
    if args.check {
        let src = match image_builder::build::sources(&recipe, &opts) {
            Ok(s) => s,
            Err(e) => return fail(&e.0),
        };
        return match image_builder::plan(&recipe, &opts, &src) {
            Ok(plan) => {
                for (path, e) in &plan.plan.entries {
                    println!("{path}\t{:o}\t{}:{}\t{}", e.mode, e.uid, e.gid, e.origin);
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e.0),
        };
    }
    opts.oci = OciOutput {
        layout: args.oci_layout,
        archive: args.oci_archive,
        gzip: args.oci_gzip,
    };
    match build(&recipe, &opts) {
        Ok(b) => {
            summary(&b);
            println!(
                "build-image: wrote {} ({} bytes, {:.1} MiB; {} entries, {:.1} MiB of files) and {}",
                b.image.display(),
                b.size,
                b.size as f64 / 1048576.0,
                b.entries,
                b.content_bytes as f64 / 1048576.0,
                b.manifest.display()
            );
            if let Some(w) = &b.oci {
                println!(
                    "build-image: wrote the OCI image (manifest {}, config {})",
                    w.manifest, w.config
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.0),
    }
}
