//! Real S3-compatible servers on 127.0.0.1 for the object-store tests:
//! moto (Python, in memory, AWS-like) and s3s-fs (Rust, a bucket is a
//! directory, the kind of server an internal mirror runs on). Users run
//! both kinds; one alone hides what the other refuses.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use object_store::{Attribute, ObjectStore, ObjectStoreExt};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Moto,
    S3sFs,
}

/// A running server; killed when dropped.
pub struct S3 {
    child: Child,
    pub port: u16,
    pub kind: Kind,
    /// s3s-fs's data directory (a bucket is a directory in it), or
    /// moto's, which holds only its request recording.
    data: tempfile::TempDir,
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const ACCESS_KEY: &str = "testing";
pub const SECRET_KEY: &str = "testing";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl S3 {
    /// moto_server, or `None` (with a message) where it is not installed.
    pub fn moto() -> Option<S3> {
        let port = free_port();
        let data = tempfile::tempdir().unwrap();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            // Its request recorder appends here, not into the working tree.
            // A file of this server's own: one named by the port outlived
            // its server and was read by a later server given the same
            // port, whose no-change publish then seemed to write.
            .env("MOTO_RECORDER_FILEPATH", data.path().join("recording"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            eprintln!("skipping: moto_server not found (.ci/run installs it: pip install 'moto[server]')");
            return None;
        };
        let s3 = S3 { child, port, kind: Kind::Moto, data };
        wait_for(port, "moto_server");
        Some(s3)
    }

    /// s3s-fs, or `None` (with a message) where it is not installed.
    pub fn s3s_fs() -> Option<S3> {
        let port = free_port();
        let data = tempfile::tempdir().unwrap();
        let child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(data.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            eprintln!(
                "skipping: s3s-fs not found (.ci/run installs it: cargo install s3s-fs --version 0.14.1 --features binary --locked)"
            );
            return None;
        };
        let s3 = S3 { child, port, kind: Kind::S3sFs, data };
        wait_for(port, "s3s-fs");
        Some(s3)
    }

    /// Both servers, those that are installed.
    pub fn both() -> Vec<S3> {
        [S3::moto(), S3::s3s_fs()].into_iter().flatten().collect()
    }

    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Moto => "moto",
            Kind::S3sFs => "s3s-fs",
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn create_bucket(&self, bucket: &str) {
        match self.kind {
            // s3s-fs: a bucket is a directory of its root.
            Kind::S3sFs => std::fs::create_dir_all(self.data.path().join(bucket)).unwrap(),
            Kind::Moto => {
                let url = format!("{}/{bucket}", self.endpoint());
                let status = reqwest::blocking::Client::new().put(url).send().unwrap().status();
                assert!(status.is_success(), "creating bucket {bucket}: {status}");
            }
        }
    }

    /// Drive moto's request recorder: `start-recording`, `stop-recording`,
    /// or `download-recording` (one JSON line per request seen).
    pub fn recorder(&self, what: &str) -> String {
        assert_eq!(self.kind, Kind::Moto, "only moto records requests");
        let url = format!("{}/moto-api/recorder/{what}", self.endpoint());
        let http = reqwest::blocking::Client::new();
        let r = if what.starts_with("download") { http.get(url) } else { http.post(url) };
        r.send().unwrap().text().unwrap()
    }

    /// Point a command at this server (credentials, region, endpoint).
    pub fn env(&self, cmd: &mut assert_cmd::Command) {
        cmd.env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", self.endpoint());
    }

    fn store(&self, bucket: &str) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .build()
            .unwrap()
    }

    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
    }

    pub fn delete(&self, bucket: &str, key: &str) {
        let store = self.store(bucket);
        S3::block_on(store.delete(&object_store::path::Path::from(key))).unwrap();
    }

    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let store = self.store(bucket);
        S3::block_on(store.put(&object_store::path::Path::from(key), bytes.to_vec().into())).unwrap();
    }

    pub fn has(&self, bucket: &str, key: &str) -> bool {
        let store = self.store(bucket);
        S3::block_on(store.head(&object_store::path::Path::from(key))).is_ok()
    }

    /// Every key under `prefix` with its size.
    pub fn keys(&self, bucket: &str, prefix: &str) -> BTreeMap<String, u64> {
        let store = self.store(bucket);
        S3::block_on(async {
            let p = object_store::path::Path::from(prefix);
            let metas: Vec<_> = store.list(Some(&p)).collect::<Vec<_>>().await;
            metas.into_iter().map(|m| m.unwrap()).map(|m| (m.location.to_string(), m.size)).collect()
        })
    }

    /// Every object under the prefix: path → (bytes, content type, cache
    /// control). Directory keys (listed without their trailing slash) come
    /// back with it.
    pub fn read_back(&self, bucket: &str, prefix: &str) -> BTreeMap<String, (Vec<u8>, String, String)> {
        let store = self.store(bucket);
        S3::block_on(async {
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
}
