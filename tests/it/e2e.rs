//! End-to-end: real pip and uv install from a built tree, served over
//! loopback by `airlock serve` and read straight from `file://`.

use crate::support::tools::*;
use crate::support::*;

/// A mirror of `app` (which needs `libdep>=1.0`), `libdep` and `Zope.Interface`.
fn built() -> Env {
    let env = Env::new(Flavour::Json);
    env.upstream
        .add("app", FakeFile::new(wheel("app", "2.0", WheelSpec { requires: &["libdep>=1.0"], ..Default::default() })));
    env.upstream.add("app", FakeFile::new(sdist("app", "2.0")));
    env.upstream.add("libdep", FakeFile::new(wheel("libdep", "0.9", WheelSpec::default())));
    env.upstream.add("libdep", FakeFile::new(wheel("libdep", "1.1", WheelSpec::default())));
    env.upstream.add("Zope.Interface", FakeFile::new(wheel("Zope.Interface", "6.0", WheelSpec::default())));
    env.manifest("[select]\npackages = [\"app\", \"libdep\", \"zope.interface\"]\n");
    env.build().success();
    env
}

fn assert_installed(python: &std::path::Path) {
    let got = run_python(
        python,
        "import app, libdep, zope_interface; print(app.__version__, libdep.__version__, zope_interface.NAME)",
    );
    assert_eq!(got, "2.0 1.1 Zope.Interface");
}

#[test]
fn pip_installs_over_http_with_a_dependency() {
    let env = built();
    let served = Served::start(&env.public());
    let py = venv(&env.path("venv"));
    let out = pip_install(&py, &format!("{}simple/", served.url), &["app", "Zope.Interface"]);
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_installed(&py);
}

#[test]
fn uv_installs_over_http_with_a_dependency() {
    let env = built();
    let served = Served::start(&env.public());
    let (out, py) = uv_install(env.dir.path(), &format!("{}simple/", served.url), &["app", "zope-interface"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_installed(&py);
}

#[test]
fn pip_and_uv_install_from_file_url() {
    let env = built();
    let url = format!("file://{}/simple/", std::fs::canonicalize(env.public()).unwrap().display());
    let py = venv(&env.path("venv"));
    let out = pip_install(&py, &url, &["app", "zope.interface"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_installed(&py);
    let (out, py) = uv_install(env.dir.path(), &url, &["app", "zope.interface"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_installed(&py);
}

#[test]
fn serve_negotiates_pep_691() {
    let env = built();
    let served = Served::start(&env.public());
    let client = reqwest::blocking::Client::new();
    let get =
        |path: &str, accept: &str| client.get(format!("{}{path}", served.url)).header("Accept", accept).send().unwrap();
    let r = get("simple/app/", "application/vnd.pypi.simple.v1+json");
    assert_eq!(r.headers()["content-type"], "application/vnd.pypi.simple.v1+json");
    assert_eq!(r.headers()["vary"], "Accept");
    assert!(r.text().unwrap().starts_with("{\"meta\""));
    let r = get("simple/app/", "text/html");
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(get("simple/../../etc/passwd", "*/*").status(), 404);
    let r = client.get(format!("{}simple/app", served.url)).send().unwrap();
    assert!(r.url().path().ends_with("/simple/app/"), "redirected to the slash form");
}
