//! How long host-launch takes to get the DNS appliance's root from its OCI archive: the
//! first start (open the archive, verify the blobs, unpack the layer, write the ext4 root into
//! an empty cache) against a start that finds it in the cache (open the archive, verify the
//! index, manifest and config, find the entry). `oci::cache::root` as host-launch calls it;
//! N rounds each, median and worst printed, for the plain and the gzip layer.
//!
//! ```sh
//! cargo bench -p build-image --bench oci_root [-- --rounds 10]
//! ```

use oci::read::Reference;
use std::path::Path;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(5usize);
    let dir = e2e::TempDir::new("bench-oci").unwrap();
    let recipe_path = e2e::workspace_root().join("build-image/recipes/dns.json");
    let r = build_image::parse(&std::fs::read(&recipe_path).unwrap()).unwrap();
    let init = e2e::guest_init().unwrap_or_else(|e| panic!("building guest-init: {e}"));
    let mut o = build_image::Options::new(dir.join("dns.img"), init);
    o.base_dir = recipe_path.parent().unwrap().to_path_buf();
    for gzip in [false, true] {
        let archive = dir.join(format!("dns-gzip{gzip}.oci.tar"));
        o.oci = build_image::oci_out::OciOutput {
            layout: None,
            archive: Some(archive.clone()),
            gzip,
        };
        build_image::build(&r, &o).unwrap();
        let size = std::fs::metadata(&archive).unwrap().len();
        let reference = Reference::Archive(archive);
        let mut first = Vec::new();
        let mut cached = Vec::new();
        for i in 0..rounds {
            let cache = dir.join(format!("cache-{gzip}-{i}"));
            first.push(timed(&reference, &cache, true));
            cached.push(timed(&reference, &cache, false));
            std::fs::remove_dir_all(&cache).unwrap();
        }
        println!(
            "oci_root: {} layer, archive {:.1} MB, {rounds} rounds: first start {}; cached start {}",
            if gzip { "gzip" } else { "plain tar" },
            size as f64 / 1e6,
            figures(&mut first),
            figures(&mut cached)
        );
    }
    println!("oci_root: 2 cores shared with other work: figures are noisy");
}

fn timed(r: &Reference, cache: &Path, expect_build: bool) -> Duration {
    let t = Instant::now();
    let root = oci::cache::root(r, cache).unwrap_or_else(|e| panic!("{e}"));
    let took = t.elapsed();
    assert_eq!(root.built.is_some(), expect_build, "{r}");
    took
}

fn figures(v: &mut [Duration]) -> String {
    v.sort();
    format!(
        "median {:.1} ms, worst {:.1} ms",
        v[v.len() / 2].as_secs_f64() * 1e3,
        v[v.len() - 1].as_secs_f64() * 1e3
    )
}
