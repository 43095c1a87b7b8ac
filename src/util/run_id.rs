//! A run's id: the state's `runs.id`, which orders runs (a later run has a
//! larger id) and names trees, exports and bundles. Typed so that a run id
//! is never taken for a count, a serial or a size.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub i64);

impl RunId {
    /// The run `n` runs before this one (grace periods count runs).
    pub fn minus(self, n: i64) -> RunId {
        RunId(self.0.saturating_sub(n))
    }

    /// The run after this one.
    pub fn next(self) -> RunId {
        RunId(self.0.saturating_add(1))
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl rusqlite::ToSql for RunId {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}

impl rusqlite::types::FromSql for RunId {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        i64::column_result(v).map(RunId)
    }
}
