//! Class suites (`docs/classes/`): the same battery against every image that claims a class,
//! from outside, against the image's own service in a real booted VM. One module per class;
//! each returns its cases, named by the IDs of its class document.

mod service;
pub mod syslog;
pub mod web;

use crate::lab::Lab;
use serde_json::json;
use std::path::Path;

/// One check of a class suite: the class document's ID, whether it passed, what was seen.
#[derive(Debug, Clone)]
pub struct Case {
    pub id: &'static str,
    pub ok: bool,
    pub evidence: String,
}

/// What a suite found about one image.
#[derive(Debug, Clone)]
pub struct ClassReport {
    pub class: String,
    pub image: String,
    pub cases: Vec<Case>,
    /// Figures measured on the way (e.g. `ready_after_ms`), for benchmarks and reports.
    pub figures: Vec<(&'static str, u64)>,
}

impl ClassReport {
    pub fn failures(&self) -> Vec<&Case> {
        self.cases.iter().filter(|c| !c.ok).collect()
    }

    pub fn table(&self) -> String {
        let mut s = format!("class {} suite of {}\n", self.class, self.image);
        for c in &self.cases {
            let r = if c.ok { "pass" } else { "FAIL" };
            s.push_str(&format!("{:<14} {r:<5} {}\n", c.id, c.evidence));
        }
        let fails = self.failures().len();
        s.push_str(&format!(
            "{} passed, {fails} failed\n",
            self.cases.len() - fails
        ));
        s
    }

    pub fn json(&self) -> serde_json::Value {
        let cases: Vec<_> = self
            .cases
            .iter()
            .map(|c| json!({"id": c.id, "ok": c.ok, "evidence": c.evidence}))
            .collect();
        let figures: serde_json::Map<_, _> = self
            .figures
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        json!({"class": self.class, "image": self.image, "cases": cases,
               "failures": self.failures().len(), "figures": figures})
    }
}

/// Collects a suite's cases.
#[derive(Debug, Default)]
pub struct Cases(pub Vec<Case>);

impl Cases {
    pub fn check(&mut self, id: &'static str, ok: bool, evidence: impl Into<String>) {
        self.0.push(Case {
            id,
            ok,
            evidence: crate::report::one_line(&evidence.into(), 400),
        });
    }
}

/// Runs the suite of `class` against the image in `lab`.
pub fn run_suite(class: &str, lab: &Lab, image: &Path) -> Result<ClassReport, String> {
    let (cases, figures) = match class {
        "web" => web::run(lab)?,
        "syslog" => syslog::run(lab)?,
        other => return Err(format!("no class suite for {other:?} (web, syslog)")),
    };
    Ok(ClassReport {
        class: class.to_string(),
        image: image.display().to_string(),
        cases: cases.0,
        figures,
    })
}
