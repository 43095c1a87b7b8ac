//! A generated `file://` upstream for the whole-mirror benchmarks:
//! `projects` projects of `per` tiny sdists each, with PEP 691 pages, a
//! requirements file naming every project and a `mirror.toml` using them.

use std::io::Write;
use std::path::Path;

use airlock::util::hashing::Sha256;

pub fn generate(root: &Path, projects: usize, per: usize) {
    let files = root.join("upstream/files");
    std::fs::create_dir_all(&files).unwrap();
    let mut reqs = String::new();
    for p in 0..projects {
        let name = format!("project-{p:05}");
        let mut entries = Vec::with_capacity(per);
        for v in 0..per {
            let filename = format!("project_{p:05}-1.{v}.tar.gz");
            let body = format!("{filename}\n");
            std::fs::write(files.join(&filename), &body).unwrap();
            entries.push(serde_json::json!({
                "filename": filename, "url": format!("../../files/{filename}"),
                "hashes": {"sha256": Sha256::of(body.as_bytes()).hex()}, "size": body.len(),
                "upload-time": format!("2024-01-{:02}T00:00:00Z", v + 1),
            }));
        }
        let dir = root.join("upstream/simple").join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let page = serde_json::json!({"meta": {"api-version": "1.1"}, "name": name, "files": entries});
        std::fs::write(dir.join("index.v1_json"), serde_json::to_vec(&page).unwrap()).unwrap();
        reqs.push_str(&name);
        reqs.push('\n');
    }
    std::fs::write(root.join("requirements.txt"), reqs).unwrap();
    let mut m = std::fs::File::create(root.join("mirror.toml")).unwrap();
    writeln!(
        m,
        "[mirror]\nupstream = \"file://{}/upstream/simple/\"\n[select]\nrequirements = [\"requirements.txt\"]",
        root.display()
    )
    .unwrap();
}
