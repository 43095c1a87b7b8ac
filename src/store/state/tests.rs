//! The state's unit tests.

use super::*;
use crate::dist::file::{FileFacts, RequiresPython};
use crate::dist::filename::DistFilename;
use crate::dist::names::ProjectName;
use crate::util::hashing::Sha256;
use crate::util::run_id::RunId;

fn artifact(name: &str, run: RunId) -> Artifact {
    let project: ProjectName = "pkg".parse().unwrap();
    Artifact {
        filename: DistFilename::parse(name, Some(&project)).unwrap(),
        project,
        sha256: Sha256::of(name.as_bytes()),
        size: 3,
        url: "https://x.invalid/f".into(),
        facts: FileFacts { requires_python: Some(RequiresPython::new(">=3.8")), ..FileFacts::default() },
        metadata: Some((Sha256::of(b"m"), 1)),
        first_seen: now(),
        last_verified: now(),
        added_run: run,
        selected_run: run,
        unselected_run: None,
    }
}

#[test]
fn round_trips_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = State::open(dir.path()).unwrap();
        let run = s.begin_run("build").unwrap();
        s.put_artifacts(&[artifact("pkg-1.0.tar.gz", run), artifact("pkg-1.0-py3-none-any.whl", run)]).unwrap();
        s.finish_run(run, "success", &RunCounts { added: 2, ..Default::default() }, &[]).unwrap();
    }
    let mut s = State::open(dir.path()).unwrap();
    let all = s.artifacts().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].filename.as_str(), "pkg-1.0-py3-none-any.whl", "sorted by filename");
    assert_eq!(all[1], artifact("pkg-1.0.tar.gz", RunId(1)).clone_with_times(&all[1]));
    assert_eq!(all[1].version().to_string(), "1.0", "the version comes typed from the filename");
    // Planned afresh at run 7 with only the wheel: the sdist leaves the index.
    let p = all[0].project.clone();
    let one = std::slice::from_ref(&p);
    let wheel = all[0].filename.clone();
    let left = s.record_selection(RunId(7), &[(p.clone(), wheel.clone())], one, Some(one)).unwrap();
    assert_eq!(left, 1);
    assert_eq!(s.artifact(&p, wheel.as_str()).unwrap().unwrap().selected_run, RunId(7));
    assert_eq!(s.artifact(&p, all[1].filename.as_str()).unwrap().unwrap().unselected_run, Some(RunId(7)));
    // Not planned and still requested: untouched. No longer requested: out.
    assert_eq!(s.record_selection(RunId(8), &[], &[], Some(one)).unwrap(), 0);
    assert_eq!(s.record_selection(RunId(9), &[], &[], Some(&[])).unwrap(), 1);
    assert_eq!(s.artifact(&p, wheel.as_str()).unwrap().unwrap().unselected_run, Some(RunId(9)));
    assert_eq!(s.next_run_id().unwrap(), RunId(2));
}

#[test]
fn a_row_that_does_not_parse_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = State::open(dir.path()).unwrap();
    s.put_artifacts(&[artifact("pkg-1.0.tar.gz", RunId(1))]).unwrap();
    s.conn.execute("UPDATE artifacts SET filename = 'pkg-notaversion.tar.gz'", []).unwrap();
    let err = s.artifacts().unwrap_err().to_string();
    assert!(err.contains("pkg/pkg-notaversion.tar.gz") && err.contains("corrupt"), "{err}");
}

#[test]
fn refuses_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    drop(State::open(dir.path()).unwrap());
    let conn = rusqlite::Connection::open(dir.path().join("state.sqlite")).unwrap();
    conn.execute_batch("PRAGMA user_version = 99").unwrap();
    drop(conn);
    assert!(matches!(State::open(dir.path()), Err(StateError::TooNew { found: 99, .. })));
}

impl Artifact {
    fn clone_with_times(&self, other: &Artifact) -> Artifact {
        Artifact { first_seen: other.first_seen.clone(), last_verified: other.last_verified.clone(), ..self.clone() }
    }
}

/// `plan` on a state an older airlock wrote reads it through a migrated
/// copy: the new tables are there, and the real state stays as it was.
#[test]
fn a_read_only_open_of_an_older_state_migrates_a_copy_only() {
    let dir = tempfile::tempdir().unwrap();
    drop(State::open(dir.path()).unwrap());
    let conn = rusqlite::Connection::open(dir.path().join("state.sqlite")).unwrap();
    conn.execute_batch(
        "DROP TABLE publishers; DROP TABLE attested; ALTER TABLE gate DROP COLUMN note; PRAGMA user_version = 10",
    )
    .unwrap();
    drop(conn);
    let s = State::open_read_only(dir.path()).unwrap();
    assert!(s.publisher_pins().unwrap().is_empty());
    drop(s);
    let conn = rusqlite::Connection::open(dir.path().join("state.sqlite")).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 10, "the real state is not migrated by a read-only open");
}
