//! One run at a time: an advisory `flock` on `<state>/lock`.
//!
//! The kernel releases the lock when its holder dies, however it dies, so a
//! lock left by a killed run is never "held": the next run takes it and
//! reports the previous holder it found recorded in the file. The file's
//! content (pid, start time, command) only serves messages.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(
        "another airlock run holds {path}: {holder}; wait for it to finish (a lock left by a killed run is taken over automatically)"
    )]
    Held { path: String, holder: String },
}

/// Held for the life of a run; released on drop (or by the kernel on death).
#[derive(Debug)]
pub struct RunLock {
    file: File,
    /// A signal that ends the process empties the file too.
    _signal: crate::util::signal::Guard,
}

fn describe(content: &str) -> String {
    let mut pid = "?";
    let mut started = "?";
    let mut command = "?";
    for line in content.lines() {
        if let Some((k, v)) = line.split_once('=') {
            match k {
                "pid" => pid = v,
                "started" => started = v,
                "command" => command = v,
                _ => {}
            }
        }
    }
    format!("pid {pid}, `airlock {command}` started {started}")
}

impl RunLock {
    pub fn acquire(state_dir: &Path, command: &str) -> Result<RunLock, LockError> {
        fs_err::create_dir_all(state_dir)?;
        let path = state_dir.join("lock");
        let mut file =
            fs_err::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?.into_parts().0;
        let mut previous = String::new();
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let _ = file.read_to_string(&mut previous);
                return Err(LockError::Held { path: path.display().to_string(), holder: describe(&previous) });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(fs_err_io(e, &path)),
        }
        let _ = file.read_to_string(&mut previous);
        if !previous.trim().is_empty() {
            tracing::warn!("taking over a stale lock left by a run that did not finish ({})", describe(&previous));
        }
        file.set_len(0).map_err(|e| fs_err_io(e, &path))?;
        file.seek(SeekFrom::Start(0)).map_err(|e| fs_err_io(e, &path))?;
        write!(file, "pid={}\nstarted={}\ncommand={command}\n", std::process::id(), super::state::now())
            .map_err(|e| fs_err_io(e, &path))?;
        file.sync_data().map_err(|e| fs_err_io(e, &path))?;
        let signal = crate::util::signal::Guard::cleanup(move || {
            let _ = std::fs::OpenOptions::new().write(true).open(&path).and_then(|f| f.set_len(0));
        });
        Ok(RunLock { file, _signal: signal })
    }
}

fn fs_err_io(e: std::io::Error, path: &Path) -> LockError {
    LockError::Io(std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // An empty file tells the next run this one ended cleanly.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path(), "build").unwrap();
        let err = RunLock::acquire(dir.path(), "build").unwrap_err().to_string();
        assert!(err.contains(&format!("pid {}", std::process::id())) && err.contains("airlock build"), "{err}");
        drop(first);
        RunLock::acquire(dir.path(), "verify").unwrap();
    }

    #[test]
    fn stale_content_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("lock"), "pid=999999\nstarted=2020-01-01T00:00:00Z\ncommand=build\n").unwrap();
        let lock = RunLock::acquire(dir.path(), "build").unwrap();
        let content = std::fs::read_to_string(dir.path().join("lock")).unwrap();
        drop(lock);
        assert!(content.contains(&format!("pid={}", std::process::id())));
    }
}
