//! Which appliances a rollout moves: the running ones whose image has the old digest
//! (`--from`), or the named ones; each with its spec, image, digest and class, all read before
//! anything is stopped.

use crate::error::{Error, Result};
use crate::state::{self, Entry};
use appliance::class::Class;
use appliance::manifest;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// An image as a rollout compares it: where it is, its digest, its class.
#[derive(Debug, Clone)]
pub struct Image {
    pub path: PathBuf,
    /// `sha256:<hex>` of the image and its manifest (what a signature signs).
    pub digest: String,
    pub class: Option<Class>,
}

/// One appliance to move.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub spec: PathBuf,
    pub image: Image,
    /// The systemd unit running it (as its launcher recorded at start), when systemd started it.
    pub systemd: Option<crate::state::Systemd>,
}

/// How the operator chose the appliances.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Every running appliance whose image digest starts with this (`sha256:` optional).
    From(String),
    /// These appliances, which must be running.
    Names(Vec<String>),
    /// Every running appliance (only to show them: `update --plan`).
    Running,
}

/// Reads an image's manifest and digest (the whole image is hashed once per path).
#[derive(Debug, Default)]
pub struct Images {
    seen: HashMap<PathBuf, Image>,
}

impl Images {
    pub fn get(&mut self, path: &Path) -> Result<Image> {
        if let Some(i) = self.seen.get(path) {
            return Ok(i.clone());
        }
        let manifest_path = appliance::manifest::path_beside(path);
        let text = std::fs::read(&manifest_path).map_err(|e| {
            Error::invalid(format!("{}: cannot read: {e}", manifest_path.display()))
        })?;
        let m = manifest::parse(&text)
            .map_err(|e| Error::invalid(format!("{}: {e}", manifest_path.display())))?;
        let image = Image {
            path: path.to_path_buf(),
            digest: crate::trust::digest(path, &manifest_path)?.to_string(),
            class: m.class,
        };
        self.seen.insert(path.to_path_buf(), image.clone());
        Ok(image)
    }
}

/// The hex of a digest as given (`sha256:` optional), checked: at least 12 lower-case hex
/// digits, so a short prefix cannot match images by accident.
pub fn digest_prefix(given: &str) -> Result<String> {
    let hex = given.strip_prefix("sha256:").unwrap_or(given);
    let ok = (12..=64).contains(&hex.len())
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !ok {
        return Err(Error::invalid(format!(
            "--from: '{given}' is not an image digest; give `sha256:` and at least 12 lower-case \
             hex digits of it (`host-launch update --image NEW --plan` shows each running appliance's)"
        )));
    }
    Ok(format!("sha256:{hex}"))
}

/// The running appliances with their images, in natural order of names.
pub fn running(base: &Path, images: &mut Images) -> Result<Vec<Target>> {
    let mut out = Vec::new();
    for e in state::list(base) {
        if let Some(t) = target_of(&e, images)? {
            out.push(t);
        }
    }
    Ok(out)
}

fn target_of(e: &Entry, images: &mut Images) -> Result<Option<Target>> {
    let Some(st) = e.state.as_ref().filter(|_| e.running) else {
        return Ok(None);
    };
    let Some(image) = st.image.as_deref() else {
        return Ok(None);
    };
    let image = images
        .get(Path::new(image))
        .map_err(|err| err.context(format!("appliance '{}'", e.name)))?;
    Ok(Some(Target {
        name: e.name.clone(),
        spec: PathBuf::from(&st.spec),
        image,
        systemd: st.systemd.clone(),
    }))
}

/// The appliances `sel` chooses among the running ones.
pub fn select(running: Vec<Target>, sel: &Selection) -> Result<Vec<Target>> {
    match sel {
        Selection::From(d) => {
            let prefix = digest_prefix(d)?;
            Ok(running
                .into_iter()
                .filter(|t| t.image.digest.starts_with(&prefix))
                .collect())
        }
        Selection::Running => Ok(running),
        Selection::Names(names) => names
            .iter()
            .map(|n| {
                running
                    .iter()
                    .find(|t| &t.name == n)
                    .cloned()
                    .ok_or_else(|| {
                        Error::not_found(format!(
                            "'{n}' is not a running appliance (`host-launch list` shows them)"
                        ))
                    })
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(name: &str, digest: &str) -> Target {
        Target {
            name: name.into(),
            spec: PathBuf::from(format!("{name}.json")),
            image: Image {
                path: PathBuf::from("x.img"),
                digest: digest.into(),
                class: None,
            },
            systemd: None,
        }
    }

    #[test]
    fn from_matches_a_digest_prefix_only() {
        let a = format!("sha256:{}", "ab".repeat(32));
        let b = format!("sha256:{}", "cd".repeat(32));
        let all = vec![target("a1", &a), target("b1", &b), target("a2", &a)];
        let got = select(all.clone(), &Selection::From("abababababab".into())).unwrap();
        let names: Vec<_> = got.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a1", "a2"]);
        assert!(select(all.clone(), &Selection::From(b.clone()))
            .unwrap()
            .iter()
            .all(|t| t.name == "b1"));
        let short = select(all, &Selection::From("abab".into())).unwrap_err();
        assert!(short.message.contains("--from"), "{}", short.message);
    }

    #[test]
    fn names_must_be_running() {
        let all = vec![target("a1", "sha256:00")];
        let e = select(all, &Selection::Names(vec!["zz".into()])).unwrap_err();
        assert!(e.message.contains("'zz' is not a running appliance"));
    }
}
