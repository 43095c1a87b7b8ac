//! Snapshots of rendered pages (insta), with the upstream port and times
//! filtered so they only change when the output format does.

use crate::support::*;

#[test]
fn rendered_pages() {
    let env = Env::new(Flavour::Json);
    let up = &env.upstream;
    up.add(
        "Demo.Pkg",
        FakeFile::new(wheel("Demo.Pkg", "1.0", WheelSpec { requires_python: Some(">=3.8"), ..Default::default() }))
            .uploaded("2024-01-02T03:04:05Z"),
    );
    up.add("Demo.Pkg", FakeFile::new(sdist("Demo.Pkg", "1.0")).uploaded("2024-01-02T03:04:05Z"));
    up.add("Demo.Pkg", FakeFile::new(wheel("Demo.Pkg", "0.9+local", WheelSpec::default())).yanked("use 1.0"));
    env.manifest("[select]\npackages = [\"demo.pkg\"]\nyanked = true\n");
    env.airlock().arg("build").env("SOURCE_DATE_EPOCH", "1700000000").assert().success();
    let public = env.public();
    let read = |p: &str| std::fs::read_to_string(public.join(p)).unwrap();
    let port = env.upstream.port.to_string();
    insta::with_settings!({filters => vec![(port.as_str(), "[PORT]")]}, {
        insta::assert_snapshot!("simple_root_html", read("simple/index.html"));
        insta::assert_snapshot!("simple_root_json", read("simple/index.v1_json"));
        insta::assert_snapshot!("project_html", read("simple/demo-pkg/index.html"));
        let json: serde_json::Value = serde_json::from_str(&read("simple/demo-pkg/index.v1_json")).unwrap();
        insta::assert_json_snapshot!("project_json", json);
        insta::assert_snapshot!("landing_html", read("index.html"));
        insta::assert_snapshot!("browse_project_html", read("projects/demo-pkg/index.html"));
        insta::assert_snapshot!("browse_projects_html", read("projects/index.html"));
        insta::assert_snapshot!("browse_projects_js", read("projects/index.js"));
    });
}
