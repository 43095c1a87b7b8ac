//! Generated `file://` upstreams for the whole-mirror benchmarks, each
//! with a requirements file naming every project and a `mirror.toml`
//! using them: [`generate`], `projects` projects of `per` tiny sdists
//! each, with their PEP 691 pages; [`generate_pages`], PEP 691 pages only
//! (no file behind them: for `plan`, which fetches none).

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
        write_page(root, &name, entries, &mut reqs);
    }
    write_manifest(root, &reqs);
}

/// PEP 691 pages for `counts.len()` projects, project `p` offering
/// `counts[p]` files (releases of an sdist and three wheels, the wheels
/// with PEP 658 metadata, as PyPI serves them); no file exists behind
/// them. Returns the number of files offered.
#[allow(dead_code)] // only benches/scale.rs simulates PyPI
pub fn generate_pages(root: &Path, counts: &[usize]) -> usize {
    let mut reqs = String::new();
    let mut total = 0;
    const KINDS: [&str; 4] = [
        ".tar.gz",
        "-py3-none-any.whl",
        "-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "-cp312-cp312-win_amd64.whl",
    ];
    for (p, &n) in counts.iter().enumerate() {
        let name = format!("pypi-{p:06}");
        let entries: Vec<_> = (0..n)
            .map(|j| {
                let filename = format!("pypi_{p:06}-1.{}{}", j / 4, KINDS[j % 4]);
                let sha = Sha256::of(filename.as_bytes()).hex();
                let mut e = serde_json::json!({
                    "filename": filename, "url": format!("https://files.example.invalid/{sha}/{filename}"),
                    "hashes": {"sha256": sha}, "size": 100_000 + j,
                    "upload-time": format!("2024-01-01T00:{:02}:{:02}Z", (j / 60) % 60, j % 60),
                });
                if j % 4 != 0 {
                    e["core-metadata"] = serde_json::json!({"sha256": Sha256::of(sha.as_bytes()).hex()});
                }
                e
            })
            .collect();
        total += n;
        write_page(root, &name, entries, &mut reqs);
    }
    write_manifest(root, &reqs);
    total
}

/// A project's PEP 691 page, and its name on the requirements.
fn write_page(root: &Path, name: &str, entries: Vec<serde_json::Value>, reqs: &mut String) {
    let dir = root.join("upstream/simple").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let page = serde_json::json!({"meta": {"api-version": "1.1"}, "name": name, "files": entries});
    std::fs::write(dir.join("index.v1_json"), serde_json::to_vec(&page).unwrap()).unwrap();
    reqs.push_str(name);
    reqs.push('\n');
}

fn write_manifest(root: &Path, reqs: &str) {
    std::fs::write(root.join("requirements.txt"), reqs).unwrap();
    let mut m = std::fs::File::create(root.join("mirror.toml")).unwrap();
    writeln!(
        m,
        "[mirror]\nupstream = \"file://{}/upstream/simple/\"\n[select]\nrequirements = [\"requirements.txt\"]",
        root.display()
    )
    .unwrap();
}
