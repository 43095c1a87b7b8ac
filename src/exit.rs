//! How a command that ran to its end went, as DESIGN.md's exit codes: 0
//! success, 1 the run failed, 3 policy breach, 4 advisory data missing or
//! stale (2, usage, is clap's and `Error::Usage`'s).

/// The outcome of a command. Where several apply, 4 goes before 1 before 3
/// (README: a run that could not audit or could not complete says so first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    Failed = 1,
    Policy = 3,
    Advisories = 4,
}

impl Exit {
    /// The outcome recorded for a run in the state.
    pub fn outcome(self) -> &'static str {
        match self {
            Exit::Success => "success",
            Exit::Failed => "failed",
            Exit::Policy => "policy",
            Exit::Advisories => "advisories",
        }
    }

    pub fn from_code(code: i64) -> Exit {
        match code {
            0 => Exit::Success,
            3 => Exit::Policy,
            4 => Exit::Advisories,
            _ => Exit::Failed,
        }
    }
}
