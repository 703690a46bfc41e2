//! Results per requirement, the table and the JSON the kit prints.

use crate::requirements::{How, Level, Requirement, ALL};
use serde_json::json;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    Skipped,
    /// Not checkable from outside (the requirement list says why).
    NotCheckable,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skipped => "skipped",
            Status::NotCheckable => "not checkable",
        }
    }
}

/// What the checks found, requirement by requirement; one requirement may be checked in
/// several boots (any failure fails it).
#[derive(Debug, Default)]
pub struct Results {
    found: BTreeMap<&'static str, Vec<(Status, String)>>,
}

impl Results {
    /// A check of `id`: passed when `ok`, with what was seen.
    pub fn check(&mut self, id: &'static str, ok: bool, evidence: impl Into<String>) {
        debug_assert!(
            crate::requirements::get(id).is_some(),
            "unknown requirement {id}"
        );
        let status = if ok { Status::Pass } else { Status::Fail };
        self.found
            .entry(id)
            .or_default()
            .push((status, evidence.into()));
    }

    /// `id` could not be checked in this run, and why.
    pub fn skip(&mut self, id: &'static str, why: impl Into<String>) {
        self.found
            .entry(id)
            .or_default()
            .push((Status::Skipped, why.into()));
    }

    /// The result of each requirement, in the spec's order.
    pub fn rows(&self) -> Vec<Row> {
        ALL.iter().map(|r| self.row(r)).collect()
    }

    fn row(&self, req: &'static Requirement) -> Row {
        if let How::Not(why) = req.how {
            return Row {
                req,
                status: Status::NotCheckable,
                evidence: why.to_string(),
            };
        }
        let Some(found) = self.found.get(req.id) else {
            return Row {
                req,
                status: Status::Skipped,
                evidence: "not run".into(),
            };
        };
        let pick = |s: Status| found.iter().filter(move |(st, _)| *st == s);
        let (status, items): (Status, Vec<&String>) = if pick(Status::Fail).next().is_some() {
            (Status::Fail, pick(Status::Fail).map(|(_, e)| e).collect())
        } else if pick(Status::Pass).next().is_some() {
            (Status::Pass, pick(Status::Pass).map(|(_, e)| e).collect())
        } else {
            (
                Status::Skipped,
                pick(Status::Skipped).map(|(_, e)| e).collect(),
            )
        };
        let evidence = items
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        Row {
            req,
            status,
            evidence,
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub req: &'static Requirement,
    pub status: Status,
    pub evidence: String,
}

/// The rows of a run, with what they mean for the exit status.
#[derive(Debug, Clone)]
pub struct Report {
    pub image: String,
    pub rows: Vec<Row>,
}

impl Report {
    /// The MUST requirements that failed.
    pub fn must_failures(&self) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| r.status == Status::Fail && r.req.level == Level::Must)
            .collect()
    }

    /// The row of requirement `id`.
    pub fn row(&self, id: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.req.id == id)
    }

    /// The table for people: requirement, level, result, evidence.
    pub fn table(&self) -> String {
        let mut out = format!(
            "conformance of {} to the host contract (docs/contract.md)\n",
            self.image
        );
        out.push_str(&format!(
            "{:<11} {:<6} {:<13} {}\n",
            "requirement", "level", "result", "evidence"
        ));
        for r in &self.rows {
            out.push_str(&format!(
                "{:<11} {:<6} {:<13} {}: {}\n",
                r.req.id,
                r.req.level.as_str(),
                r.status.as_str(),
                r.req.title,
                one_line(&r.evidence, 400)
            ));
        }
        let count = |s: Status| self.rows.iter().filter(|r| r.status == s).count();
        out.push_str(&format!(
            "{} pass, {} fail ({} MUST), {} skipped, {} not checkable from outside\n",
            count(Status::Pass),
            count(Status::Fail),
            self.must_failures().len(),
            count(Status::Skipped),
            count(Status::NotCheckable)
        ));
        out
    }

    /// The same for machines.
    pub fn json(&self) -> serde_json::Value {
        let rows: Vec<_> = self
            .rows
            .iter()
            .map(|r| {
                json!({"id": r.req.id, "level": r.req.level.as_str(), "title": r.req.title,
                       "status": r.status.as_str(), "evidence": r.evidence})
            })
            .collect();
        json!({"image": self.image, "spec": "docs/contract.md",
               "must_failures": self.must_failures().iter().map(|r| r.req.id).collect::<Vec<_>>(),
               "results": rows})
    }
}

/// Evidence on one line, bounded (it may quote what the guest wrote).
pub fn one_line(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        flat
    } else {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_anywhere_fails_the_requirement_and_counts_when_it_is_a_must() {
        let mut r = Results::default();
        r.check("C-NET-1", true, "boot a: ping ok");
        r.check("C-NET-1", false, "boot b: no reply");
        r.check("C-SVC-6", false, "NoNewPrivs 0");
        r.skip("C-TMPFS-1", "no mount point");
        let report = Report {
            image: "x.img".into(),
            rows: r.rows(),
        };
        let row = |id| report.row(id).unwrap();
        assert_eq!(row("C-NET-1").status, Status::Fail);
        assert_eq!(row("C-NET-1").evidence, "boot b: no reply");
        assert_eq!(row("C-SVC-6").status, Status::Fail);
        assert_eq!(row("C-TMPFS-1").status, Status::Skipped);
        assert_eq!(row("C-HOST-1").evidence, "not run");
        assert_eq!(row("C-REAP-1").status, Status::NotCheckable);
        // C-SVC-6 is a SHOULD: only C-NET-1 makes the kit exit non-zero.
        let must: Vec<_> = report.must_failures().iter().map(|r| r.req.id).collect();
        assert_eq!(must, ["C-NET-1"]);
        assert_eq!(
            report.json()["must_failures"],
            serde_json::json!(["C-NET-1"])
        );
        assert!(
            report.table().contains("C-NET-1     MUST   fail"),
            "{}",
            report.table()
        );
    }

    #[test]
    fn passes_keep_every_evidence_and_guest_text_is_bounded() {
        let mut r = Results::default();
        r.check("C-OFF-1", true, "a");
        r.check("C-OFF-1", true, "b");
        let report = Report {
            image: "x.img".into(),
            rows: r.rows(),
        };
        assert_eq!(report.row("C-OFF-1").unwrap().evidence, "a; b");
        assert_eq!(one_line("x\u{1b}[2J\ny", 10), "x [2J y");
        assert_eq!(one_line(&"z".repeat(20), 5), "zzzzz…");
    }
}
