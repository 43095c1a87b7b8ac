//! Files that appear whole or not at all: written to a temporary file in the
//! target's directory, made world-readable (a web server's user must read
//! what is published), synced, then renamed over the target. Every error
//! names the path it is about.

use std::io::Write;
use std::path::Path;

/// Temporary files are created 0600; a file about to be published must be
/// readable by the web server's user (nginx runs workers as www-data).
pub fn make_readable(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
}

fn named(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Make `tmp` readable, sync it and rename it to `dest` (same file
/// system), making `dest`'s directory when the rename says it is missing:
/// most files go into a directory an earlier one made, and a mkdir per
/// file (and the stat after its EEXIST) was two of a fetch's fifteen
/// system calls per file.
pub fn persist(tmp: tempfile::NamedTempFile, dest: &Path) -> std::io::Result<()> {
    make_readable(tmp.as_file()).map_err(|e| named(tmp.path(), e))?;
    tmp.as_file().sync_all().map_err(|e| named(tmp.path(), e))?;
    match tmp.persist(dest) {
        Ok(_) => Ok(()),
        Err(e) if e.error.kind() == std::io::ErrorKind::NotFound && e.file.path().exists() => {
            fs_err::create_dir_all(parent(dest))?;
            e.file.persist(dest).map(drop).map_err(|e| named(dest, e.error))
        }
        Err(e) => Err(named(dest, e.error)),
    }
}

/// The directory `path` is in (`.` for a bare name).
fn parent(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// A temporary file beside `path`, for [`persist`].
pub fn temp_beside(path: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let dir = parent(path);
    fs_err::create_dir_all(dir)?;
    tempfile::Builder::new().prefix(".airlock-").suffix(".tmp").tempfile_in(dir).map_err(|e| named(dir, e))
}

/// Write `bytes` to `path` atomically.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = temp_beside(path)?;
    tmp.write_all(bytes).map_err(|e| named(tmp.path(), e))?;
    persist(tmp, path)
}

/// Remove a directory tree, its subtrees in parallel: a published or
/// staged tree holds a file or link per artifact and pages per project,
/// and unlinking them one by one was a tenth of a rerun's time. The tree's
/// shape (a few top directories, then one per project) gives the
/// parallelism: the grandchildren are removed on every core, then the rest.
pub fn remove_tree(dir: &Path) -> std::io::Result<()> {
    use rayon::prelude::*;
    let mut grandchildren = Vec::new();
    for child in fs_err::read_dir(dir)? {
        let child = child?;
        if child.file_type()?.is_dir() {
            for g in fs_err::read_dir(child.path())? {
                let g = g?;
                grandchildren.push((g.path(), g.file_type()?.is_dir()));
            }
        }
    }
    grandchildren.par_iter().try_for_each(|(path, is_dir)| match is_dir {
        true => fs_err::remove_dir_all(path),
        false => fs_err::remove_file(path),
    })?;
    fs_err::remove_dir_all(dir)
}

/// Remove what is at `path`: a directory tree ([`remove_tree`]) or one
/// file or link (never followed), as its directory entry says.
pub fn remove_entry(path: &Path, is_dir: bool) -> std::io::Result<()> {
    match is_dir {
        true => remove_tree(path),
        false => fs_err::remove_file(path),
    }
}

/// Create `dir` if needed and prove a file can be written in it, so that
/// an unwritable output, state or store fails a run before its first
/// request rather than after its downloads.
pub fn probe_writable(dir: &Path) -> std::io::Result<()> {
    let cannot = |e: std::io::Error| std::io::Error::new(e.kind(), format!("cannot write in {}: {e}", dir.display()));
    fs_err::create_dir_all(dir).map_err(cannot)?;
    tempfile::Builder::new().prefix(".airlock-probe-").tempfile_in(dir).map_err(cannot)?;
    Ok(())
}

/// airlock's per-user cache (`AIRLOCK_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/airlock`, else `~/.cache/airlock`), as pip and uv keep
/// theirs: content-addressed data that any command may read and write
/// (`plan` too, which writes no state). `None` when set to empty (off).
pub fn user_cache_dir() -> Option<std::path::PathBuf> {
    match std::env::var_os("AIRLOCK_CACHE_DIR") {
        Some(d) if d.is_empty() => None,
        Some(d) => Some(std::path::PathBuf::from(d)),
        None => match std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
            Some(d) => Some(Path::new(&d).join("airlock")),
            None => Some(Path::new(&std::env::var_os("HOME")?).join(".cache/airlock")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_whole_readable_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/f.json");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
        assert_eq!(std::fs::read_dir(dir.path().join("sub")).unwrap().count(), 1, "no temporary file left");
    }
}
