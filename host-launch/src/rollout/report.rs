//! What a rollout did, per appliance: the image it left and the one it runs now, its downtime,
//! and whether it was rolled back; printed for people or as one JSON document.

use serde::Serialize;

/// How one appliance's step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Result {
    /// On the new image, ready and healthy for the settle time.
    Updated,
    /// The new image failed (not ready, or not healthy while settling); the old one runs again.
    RolledBack,
    /// The new image failed and the old one did not come back: the appliance is down.
    RollbackFailed,
    /// The rollout stopped before this appliance; it stays on the old image.
    NotAttempted,
}

/// One appliance's step.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: String,
    pub from_image: String,
    pub from_digest: String,
    pub result: Result,
    /// From the start of its upgrade until the image it runs now reported ready (an upper
    /// bound of the time it did not answer); `None` when not attempted or still down.
    pub downtime_s: Option<f64>,
    /// Why it was rolled back, or what the upgrade said last.
    pub detail: String,
}

/// The whole rollout.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub image: String,
    pub digest: String,
    pub settle_s: f64,
    pub appliances: Vec<Step>,
    /// Running appliances already on the new image (left alone).
    pub already_current: Vec<String>,
    pub total_s: f64,
}

impl Report {
    /// The exit status: 0 when every step updated, 127 when one was rolled back, 122 when a
    /// rollback failed.
    pub fn exit_code(&self) -> i32 {
        let has = |r| self.appliances.iter().any(|s| s.result == r);
        if has(Result::RollbackFailed) {
            crate::exit::HOST
        } else if has(Result::RolledBack) {
            crate::exit::ROLLED_BACK
        } else {
            crate::exit::CLEAN
        }
    }

    /// The final summary line.
    pub fn summary(&self) -> String {
        let count = |r| self.appliances.iter().filter(|s| s.result == r).count();
        format!(
            "rollout of {}: {} updated, {} rolled back, {} rollback failed, {} not attempted, \
             {} already current, in {:.1} s",
            self.image,
            count(Result::Updated),
            count(Result::RolledBack),
            count(Result::RollbackFailed),
            count(Result::NotAttempted),
            self.already_current.len(),
            self.total_s
        )
    }
}

impl Step {
    /// One line for people.
    pub fn line(&self) -> String {
        let down = self
            .downtime_s
            .map(|d| format!(", down {d:.2} s"))
            .unwrap_or_default();
        let what = match self.result {
            Result::Updated => "updated",
            Result::RolledBack => "ROLLED BACK",
            Result::RollbackFailed => "ROLLBACK FAILED",
            Result::NotAttempted => "not attempted",
        };
        format!(
            "[{}] {what} (was {} {}){down}: {}",
            self.name, self.from_image, self.from_digest, self.detail
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(r: Result) -> Step {
        Step {
            name: "a".into(),
            from_image: "old.img".into(),
            from_digest: "sha256:00".into(),
            result: r,
            downtime_s: None,
            detail: String::new(),
        }
    }

    #[test]
    fn exit_code_is_the_worst_step() {
        let mut r = Report {
            image: "new.img".into(),
            digest: "sha256:11".into(),
            settle_s: 1.0,
            appliances: vec![step(Result::Updated)],
            already_current: vec![],
            total_s: 1.0,
        };
        assert_eq!(r.exit_code(), 0);
        r.appliances.push(step(Result::RolledBack));
        r.appliances.push(step(Result::NotAttempted));
        assert_eq!(r.exit_code(), crate::exit::ROLLED_BACK);
        assert!(r.summary().contains("1 rolled back"), "{}", r.summary());
        r.appliances.push(step(Result::RollbackFailed));
        assert_eq!(r.exit_code(), crate::exit::HOST);
    }
}
