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
            "conformance of {} to host contract v1 (docs/contract-v1.md)\n",
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
        json!({"image": self.image, "spec": "docs/contract-v1.md",
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
