//! Publishing to a real S3-compatible server (moto, started on 127.0.0.1).

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use object_store::{Attribute, ObjectStore, ObjectStoreExt};

use crate::support::*;

pub(crate) use crate::support::s3::S3 as Moto;

pub(crate) fn start_moto() -> Option<Moto> {
    Moto::moto()
}

pub(crate) fn s3_env(cmd: &mut assert_cmd::Command, port: u16) {
    cmd.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"));
}

fn test_store(port: u16, bucket: &str) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_allow_http(true)
        .build()
        .unwrap()
}

/// Delete one object, with credentials.
pub(crate) fn delete_object(port: u16, bucket: &str, key: &str) {
    let store = test_store(port, bucket);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(store.delete(&object_store::path::Path::from(key))).unwrap();
}

/// Put one object, with credentials.
pub(crate) fn put_object(port: u16, bucket: &str, key: &str, bytes: &[u8]) {
    let store = test_store(port, bucket);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(store.put(&object_store::path::Path::from(key), bytes.to_vec().into())).unwrap();
}

/// Whether an object exists.
pub(crate) fn has_object(port: u16, bucket: &str, key: &str) -> bool {
    let store = test_store(port, bucket);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(store.head(&object_store::path::Path::from(key))).is_ok()
}

/// Every object under the prefix: path → (bytes, content type, cache control).
pub(crate) fn read_back(port: u16, bucket: &str, prefix: &str) -> BTreeMap<String, (Vec<u8>, String, String)> {
    let store = test_store(port, bucket);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let p = object_store::path::Path::from(prefix);
        let metas: Vec<_> = store.list(Some(&p)).collect::<Vec<_>>().await;
        let mut out = BTreeMap::new();
        for m in metas {
            let m = m.unwrap();
            let full = m.location.to_string();
            let mut rel = if full == prefix {
                String::new()
            } else {
                full.strip_prefix(&format!("{prefix}/")).unwrap().to_string()
            };
            if rel.starts_with(".airlock/") {
                continue;
            }
            // A directory key (listed without its trailing slash).
            let dir = !rel.rsplit('/').next().unwrap().contains('.');
            let location = if dir {
                if !rel.is_empty() {
                    rel.push('/');
                }
                m.location.clone().join("")
            } else {
                m.location.clone()
            };
            let got = store.get(&location).await.unwrap();
            let attr = |a: &Attribute| got.attributes.get(a).map(|v| v.to_string()).unwrap_or_default();
            let (ct, cc) = (attr(&Attribute::ContentType), attr(&Attribute::CacheControl));
            out.insert(rel, (got.bytes().await.unwrap().to_vec(), ct, cc));
        }
        out
    })
}

/// A local tree's paths plus the directory keys S3 publishing adds for
/// every index.html.
fn with_dir_keys(local: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    let mut out = local.clone();
    for (path, bytes) in local {
        if let Some(dir) = path.strip_suffix("index.html").filter(|d| d.is_empty() || d.ends_with('/')) {
            out.insert(dir.to_string(), bytes.clone());
        }
    }
    out
}

fn uploaded(a: &assert_cmd::assert::Assert) -> BTreeSet<String> {
    stderr(a)
        .lines()
        .filter_map(|l| l.split("uploaded ").nth(1))
        .filter(|p| !p.contains("object(s)"))
        .map(|p| p.trim().to_string())
        .collect()
}

#[test]
fn s3_publish_uploads_what_changed_with_the_right_types() {
    let Some(moto) = start_moto() else { return };
    let bucket = "airlock-test";
    moto.create_bucket(bucket);

    let env = Env::new(Flavour::Json);
    for p in ["alpha", "beta"] {
        env.upstream.add(p, FakeFile::new(wheel(p, "1.0", WheelSpec::default())));
        env.upstream.add(p, FakeFile::new(sdist(p, "1.0")));
    }
    let manifest = |packages: &str| {
        env.manifest(&format!("keep_runs = 0\nmax_removed = \"100%\"\n[select]\npackages = [{packages}]\n[publish]\nto = \"s3://{bucket}/pypi\"\ndelete_after_hours = 0\n"))
    };
    manifest("\"alpha\", \"beta\"");
    env.build().success();
    let publish = |env: &Env| {
        let mut cmd = env.airlock();
        cmd.args(["-v", "publish"]);
        s3_env(&mut cmd, moto.port);
        cmd.assert().success()
    };

    // First publish: every file, with its Content-Type and Cache-Control.
    let a = publish(&env);
    let local = tree(&env.public());
    let expected = with_dir_keys(&local);
    assert_eq!(uploaded(&a).len(), expected.len());
    let objects = read_back(moto.port, bucket, "pypi");
    assert_eq!(objects.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    for (path, (bytes, ct, cc)) in &objects {
        assert!(bytes == &expected[path], "{path} differs");
        let page = if path.is_empty() || path.ends_with('/') { format!("{path}index.html") } else { path.clone() };
        assert_eq!(ct, airlock::util::mime::content_type(&page), "{path}");
        assert_eq!(cc, airlock::util::mime::cache_control(&page), "{path}");
    }
    for dir in ["", "simple/", "simple/alpha/", "simple/beta/"] {
        assert_eq!(objects[dir].1, "text/html; charset=utf-8", "directory key {dir:?}");
    }
    let ct = |p: &str| objects[p].1.clone();
    assert_eq!(ct("simple/alpha/index.v1_json"), "application/vnd.pypi.simple.v1+json");
    assert_eq!(ct("simple/alpha/index.html"), "text/html; charset=utf-8");
    assert_eq!(ct("packages/alpha/alpha-1.0-py3-none-any.whl"), "application/zip");
    assert_eq!(ct("packages/alpha/alpha-1.0.tar.gz"), "application/gzip");
    assert_eq!(ct("packages/alpha/alpha-1.0-py3-none-any.whl.metadata"), "text/plain; charset=utf-8");
    assert_eq!(ct("reports/security.sarif"), "application/sarif+json");
    assert_eq!(ct("reports/summary.md"), "text/markdown; charset=utf-8");
    assert_eq!(objects["packages/alpha/alpha-1.0.tar.gz"].2, "public, max-age=31536000, immutable");

    // Republish with no change: nothing is uploaded, and no request writes
    // anything (moto's recorder sees every request).
    moto.recorder("start-recording");
    let a = publish(&env);
    let recorded = moto.recorder("download-recording");
    moto.recorder("stop-recording");
    assert!(uploaded(&a).is_empty(), "{:?}", uploaded(&a));
    assert!(stderr(&a).contains("uploaded 0 object(s)"), "{}", stderr(&a));
    let writes: Vec<&str> = recorded
        .lines()
        .filter(|l| ["\"PUT\"", "\"POST\"", "\"DELETE\""].iter().any(|m| l.contains(&format!("\"method\": {m}"))))
        .collect();
    assert!(!recorded.is_empty() && writes.is_empty(), "a no-change publish wrote: {writes:?}");

    // One project changes: only what changed moves.
    env.upstream.add("beta", FakeFile::new(wheel("beta", "2.0", WheelSpec::default())));
    env.build().success();
    let after = tree(&env.public());
    let changed: BTreeSet<String> =
        with_dir_keys(&after).iter().filter(|(p, b)| expected.get(*p) != Some(b)).map(|(p, _)| p.clone()).collect();
    let a = publish(&env);
    assert_eq!(uploaded(&a), changed);
    assert!(changed.contains("packages/beta/beta-2.0-py3-none-any.whl") && changed.contains("simple/beta/index.html"));
    assert!(!changed.iter().any(|p| p.starts_with("packages/alpha/") || p.starts_with("simple/alpha/")), "{changed:?}");

    // A project leaves: its objects are deleted (grace period 0 here).
    manifest("\"beta\"");
    env.build().success();
    let a = publish(&env);
    // Its package, metadata, simple pages and project page, with their directory keys.
    assert!(stderr(&a).contains("deleted 8"), "{}", stderr(&a));
    let objects = read_back(moto.port, bucket, "pypi");
    assert!(!objects.keys().any(|k| k.contains("alpha")), "{:?}", objects.keys());
    assert_eq!(
        objects.keys().cloned().collect::<BTreeSet<_>>(),
        with_dir_keys(&tree(&env.public())).keys().cloned().collect()
    );

    // pip and uv install straight from the bucket's HTTP endpoint, read
    // anonymously as a bucket policy allows: no rewrite rules, no proxy.
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/*"}}]}}"#
    );
    let status = reqwest::blocking::Client::new()
        .put(format!("http://127.0.0.1:{}/{bucket}?policy", moto.port))
        .header("Content-Type", "application/json")
        .body(policy)
        .send()
        .unwrap()
        .status();
    assert!(status.is_success(), "{status}");
    let index = format!("http://127.0.0.1:{}/{bucket}/pypi/simple/", moto.port);
    let py = crate::support::tools::venv(&env.path("venv-bucket"));
    let out = crate::support::tools::pip_install(&py, &index, &["beta==2.0"]);
    assert!(out.status.success(), "pip from the bucket: {}", String::from_utf8_lossy(&out.stderr));
    let (out, _) = crate::support::tools::uv_install(&env.path("uv-bucket"), &index, &["beta==2.0"]);
    assert!(out.status.success(), "uv from the bucket: {}", String::from_utf8_lossy(&out.stderr));

    // pip installs from the objects read back.
    let dir = env.path("from-s3");
    for (path, (bytes, _, _)) in objects.iter().filter(|(p, _)| !p.is_empty() && !p.ends_with('/')) {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let py = crate::support::tools::venv(&env.path("venv"));
    let out = crate::support::tools::pip_install(&py, &format!("file://{}/simple/", dir.display()), &["beta==2.0"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

struct Nginx {
    child: Child,
    conf: std::path::PathBuf,
    prefix: std::path::PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // `-s stop` makes the master stop its workers; killing the master
        // alone would orphan them.
        let _ =
            Command::new("nginx").arg("-c").arg(&self.conf).arg("-p").arg(&self.prefix).args(["-s", "stop"]).status();
        if self.child.wait_timeout_ms(5000).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

trait WaitTimeout {
    fn wait_timeout_ms(&mut self, ms: u64) -> Option<std::process::ExitStatus>;
}

impl WaitTimeout for Child {
    fn wait_timeout_ms(&mut self, ms: u64) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// Debian's nginx, run in the foreground with the configuration airlock prints.
#[test]
fn nginx_serves_the_tree_with_the_documented_config() {
    if Command::new("nginx").arg("-v").output().is_err() {
        eprintln!("skipping: nginx not found (.ci/run installs it: apt-get install nginx)");
        return;
    }
    let env = Env::new(Flavour::Json);
    let old = "2020-01-01T00:00:00Z";
    let app = wheel("app", "2.0", WheelSpec { requires: &["libdep>=1.0"], ..Default::default() });
    env.upstream.add("app", FakeFile::new(app).uploaded(old));
    env.upstream.add("libdep", FakeFile::new(wheel("libdep", "1.1", WheelSpec::default())).uploaded(old));
    // Three hours old with `min_age = "1d"`: held, so its URL is a 404.
    let young = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(3)).to_string();
    env.upstream.add("app", FakeFile::new(wheel("app", "3.0", WheelSpec::default())).uploaded(&young));
    env.manifest("[select]\npackages = [\"app\", \"libdep\"]\nmin_age = \"1d\"\n");
    env.build().success();
    // Workers run as nobody, as a real deployment's would (www-data): every
    // published file must be world-readable, and the scratch directory
    // traversable.
    std::fs::set_permissions(env.dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = env.airlock().args(["serve", "public", "--nginx-config", "--port", &port.to_string()]).assert().success();
    let prefix = env.path("nginx");
    std::fs::create_dir_all(prefix.join("tmp")).unwrap();
    std::fs::write(prefix.join("airlock.conf"), &out.get_output().stdout).unwrap();
    let p = prefix.display();
    std::fs::write(
        prefix.join("nginx.conf"),
        format!(
            "daemon off;\nuser nobody nogroup;\nworker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/error.log;\nevents {{ worker_connections 64; }}\nhttp {{\n  include /etc/nginx/mime.types;\n  access_log off;\n  client_body_temp_path {p}/tmp/body;\n  proxy_temp_path {p}/tmp/proxy;\n  fastcgi_temp_path {p}/tmp/fastcgi;\n  uwsgi_temp_path {p}/tmp/uwsgi;\n  scgi_temp_path {p}/tmp/scgi;\n  include {p}/airlock.conf;\n}}\n"
        ),
    )
    .unwrap();
    let conf = prefix.join("nginx.conf");
    // `nginx -t` accepts it without a warning (no duplicate MIME type).
    let t = Command::new("nginx").arg("-t").arg("-c").arg(&conf).arg("-p").arg(&prefix).output().unwrap();
    let said = String::from_utf8_lossy(&t.stderr);
    assert!(t.status.success() && said.contains("test is successful"), "{said}");
    assert!(!said.contains("[warn]"), "{said}");
    let child = Command::new("nginx")
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(&prefix)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _nginx = Nginx { child, conf, prefix: prefix.clone() };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not start: {}",
            std::fs::read_to_string(prefix.join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::blocking::Client::new();
    let get = |path: &str, accept: &str| client.get(format!("{base}{path}")).header("Accept", accept).send().unwrap();
    let r = get(
        "/simple/app/",
        "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01",
    );
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/vnd.pypi.simple.v1+json");
    assert_eq!(r.headers()["vary"], "Accept");
    assert!(r.text().unwrap().starts_with("{\"meta\""));
    let r = get("/simple/app/", "text/html");
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    assert!(r.text().unwrap().contains("<a href=\"../../packages/app/"));
    let r = get("/simple/", "application/vnd.pypi.simple.v1+json");
    assert_eq!(r.headers()["content-type"], "application/vnd.pypi.simple.v1+json");
    let r = get("/packages/app/app-2.0-py3-none-any.whl", "*/*");
    assert_eq!(r.headers()["content-type"], "application/zip");
    assert_eq!(r.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(get("/packages/app/app-3.0-py3-none-any.whl", "*/*").status(), 404, "a held release");
    let r = get("/packages/app/app-2.0-py3-none-any.whl.metadata", "*/*");
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    let r = get("/reports/security.sarif", "*/*");
    assert_eq!(r.headers()["content-type"], "application/sarif+json");
    assert_eq!(get("/", "text/html").headers()["content-type"], "text/html; charset=utf-8");
    // nginx and `airlock serve` answer every client alike, q-values weighed.
    let served = crate::support::tools::Served::start(&env.public());
    for accept in [
        "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01",
        "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01",
        "text/html",
        "*/*",
        "application/vnd.pypi.simple.v1+json;q=0",
        "text/html, application/vnd.pypi.simple.v1+json;q=0.5",
        "application/vnd.pypi.simple.latest+json",
        "text/html;q=0.5, application/vnd.pypi.simple.v1+json",
    ] {
        let from = |url: &str| {
            client.get(format!("{url}simple/app/")).header("Accept", accept).send().unwrap().headers()["content-type"]
                .to_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(from(&format!("{base}/")), from(&served.url), "Accept: {accept}");
    }

    // pip and uv install through it.
    let index = format!("{base}/simple/");
    let py = crate::support::tools::venv(&env.path("venv"));
    let out = crate::support::tools::pip_install(&py, &index, &["app"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (out, uvpy) = crate::support::tools::uv_install(env.dir.path(), &index, &["app"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        crate::support::tools::run_python(&uvpy, "import app, libdep; print(app.__version__, libdep.__version__)"),
        "2.0 1.1"
    );
}

/// Publishing without credentials, or to a bucket that does not exist, is
/// one clear line: not an instance-metadata URL, not raw XML.
#[test]
fn s3_without_credentials_or_bucket_says_so() {
    let Some(moto) = start_moto() else { return };
    let env = Env::new(Flavour::Json);
    env.upstream.add("alpha", FakeFile::new(wheel("alpha", "1.0", WheelSpec::default())));
    env.manifest("[select]\npackages = [\"alpha\"]\n[publish]\nto = \"s3://no-such-bucket/pypi\"\n");
    env.build().success();

    let mut cmd = env.airlock();
    cmd.arg("publish")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", moto.port))
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE");
    let a = cmd.assert().code(1);
    let err = stderr(&a);
    assert!(err.contains("no AWS credentials found (looked in"), "{err}");
    assert!(err.contains("AWS_ACCESS_KEY_ID") && err.contains(".aws/credentials"), "{err}");
    assert!(!err.contains("169.254.169.254"), "{err}");

    let mut cmd = env.airlock();
    cmd.arg("publish");
    s3_env(&mut cmd, moto.port);
    let a = cmd.assert().code(1);
    let err = stderr(&a);
    assert!(err.contains("bucket `no-such-bucket` does not exist"), "{err}");
    assert!(!err.contains('<'), "no XML: {err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("error:")).count(), 1, "{err}");
}
