//! What the manifest's lock files name for its target environments: the
//! files to mirror exactly (by filename, with the sha256 the upstream must
//! declare), and for pip's hash-pinned requirements the versions whose
//! files are named by hash alone.

use std::collections::BTreeMap;

use super::env::TargetEnv;
use crate::dist::Version;
use crate::dist::filename::DistFilename;
use crate::dist::names::ProjectName;
use crate::manifest::Select;
use crate::util::hashing::Sha256;

/// A file a lock names, and which lock.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Named {
    pub sha256: Sha256,
    pub lockfile: String,
}

/// A version pinned with `--hash` values only (`lockfile` is `path:line`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hashed {
    pub version: Version,
    pub hashes: Vec<Sha256>,
    pub lockfile: String,
}

/// Which target environments (by name) install each version of each project.
pub type InstalledBy = BTreeMap<ProjectName, BTreeMap<Version, std::collections::BTreeSet<String>>>;

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Locked {
    pub files: BTreeMap<ProjectName, BTreeMap<String, Named>>,
    pub hashed: BTreeMap<ProjectName, Vec<Hashed>>,
    /// The environments each locked version is installed in.
    pub installed: InstalledBy,
}

impl Locked {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.hashed.is_empty()
    }

    /// Every project a lock names.
    pub fn projects(&self) -> impl Iterator<Item = &ProjectName> {
        self.files.keys().chain(self.hashed.keys())
    }
}

/// What the locks name for the environments: every locked package that
/// applies in one of them, with the files that fit one of them (wheels by
/// tags, sdists when the project's options take sdists).
pub fn locked(select: &Select, envs: &[TargetEnv]) -> Locked {
    let mut out = Locked::default();
    for lock in &select.locks {
        let lockfile = lock.path.display().to_string();
        for env in envs {
            let tags = env.tags();
            for p in lock.packages_for(&env.markers) {
                if let Some(v) = &p.version {
                    out.installed.entry(p.name.clone()).or_default().entry(v.clone()).or_default().insert(env.name());
                }
                let sdists = select.options_for(&p.name).sdists;
                for f in &p.files {
                    let fits = match DistFilename::parse(&f.filename, Some(&p.name)) {
                        Ok(DistFilename::Wheel(w)) => tags.matches(&w),
                        Ok(DistFilename::Sdist(_)) => sdists,
                        Err(_) => false,
                    };
                    if fits {
                        let named = Named { sha256: f.sha256, lockfile: lockfile.clone() };
                        out.files.entry(p.name.clone()).or_default().insert(f.filename.clone(), named);
                    }
                }
                if let (Some(version), false) = (&p.version, p.hashes.is_empty()) {
                    let at = p.line.map_or_else(|| lockfile.clone(), |l| format!("{lockfile}:{l}"));
                    let h = Hashed { version: version.clone(), hashes: p.hashes.clone(), lockfile: at };
                    let list = out.hashed.entry(p.name.clone()).or_default();
                    if !list.contains(&h) {
                        list.push(h);
                    }
                }
            }
        }
    }
    out
}
