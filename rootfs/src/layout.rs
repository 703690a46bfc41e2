//! What goes into a root image, by image path: the entries and the ELF closure they came
//! with. The image builder fills one from a recipe, the test harness's `RootFs` from its calls;
//! both write it with [`crate::ext4::write`].

use crate::closure;
use crate::ext4::{Content, Entry};
use std::collections::BTreeMap;
use std::path::Path;

/// Everything that goes into the image, by image path (sorted, so the order is fixed).
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub entries: BTreeMap<String, Entry>,
    /// The ELF objects (programs, plugins, libraries, loaders) and why each is there.
    pub closure: closure::Closure,
}

impl Layout {
    /// Adds one entry; a second, different entry at the same path is a problem naming both
    /// origins.
    pub fn add(&mut self, path: &str, entry: Entry, problems: &mut Vec<String>) {
        if let Some(old) = self.entries.get(path) {
            if old.content != entry.content {
                problems.push(format!(
                    "{}: {path} is already provided by {}",
                    entry.origin, old.origin
                ));
            }
            return;
        }
        self.entries.insert(path.to_string(), entry);
    }

    /// Adds a root-owned directory.
    pub fn dir(&mut self, path: &str, mode: u32, origin: &str, problems: &mut Vec<String>) {
        let e = Entry {
            content: Content::Dir,
            mode,
            uid: 0,
            gid: 0,
            origin: origin.into(),
        };
        self.add(path, e, problems);
    }

    /// Adds the missing parent directories (root-owned, 0755) of every entry, and refuses
    /// entries below something that is not a directory.
    pub fn add_parents(&mut self, problems: &mut Vec<String>) {
        let paths: Vec<String> = self.entries.keys().cloned().collect();
        for path in paths {
            let mut parent = Path::new(&path).parent();
            while let Some(p) = parent.filter(|p| *p != Path::new("/")) {
                let ps = p.to_string_lossy().into_owned();
                match self.entries.get(&ps) {
                    Some(e) if e.content == Content::Dir => {}
                    Some(e) => problems.push(format!(
                        "{}: {path} is below {ps}, which {} makes a file or symlink",
                        self.entries[&path].origin, e.origin
                    )),
                    None => {
                        let origin = format!("parent of {path}");
                        self.dir(&ps, 0o755, &origin, problems);
                    }
                }
                parent = p.parent();
            }
        }
    }
}
