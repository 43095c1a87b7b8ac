//! The pages for people (`projects/`): a project page with its README
//! rendered and sanitised, dependencies and dependents linked, advisories
//! and held releases shown; the search page; both in a real browser.

use std::path::Path;

use crate::support::*;

/// The advisory snapshot's clock (tests/fixtures/osv/policy), as the
/// security tests use it.
const NOW: &str = "1717200000";

/// A README with markdown (headings, code, links, a table) and hostile
/// markup, every piece of which would set the title to PWNED if it ran.
const README: &str = "Keywords: web,framework\nDescription-Content-Type: text/markdown\nProject-URL: Source, https://example.org/webapp\nProject-URL: Trap, javascript:document.title='PWNED'\n\n# Webapp\n\nA *small* web framework: `pip install webapp`, see [the docs](https://example.org/docs).\n\n```python\nimport webapp\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n<script>document.title='PWNED'</script>\n\n<img src=x onerror=\"document.title='PWNED'\">\n\n<a href=\"javascript:document.title='PWNED'\">click</a> <a href=\"#\" onclick=\"document.title='PWNED'\">me</a>\n\n<svg onload=\"document.title='PWNED'\"></svg><iframe src=\"javascript:parent.document.title='PWNED'\"></iframe>\n\n![logo](https://cdn.example.org/logo.png)\n";

/// webapp (with the README, depending on vulnlib, an extra and a project
/// the mirror lacks) and vulnlib 1.0 and 1.1, which the policy fixtures
/// give advisories.
fn mirror(extra: &str) -> Env {
    let env = Env::new(Flavour::Json);
    let requires = ["vulnlib>=1.0", "notmirrored>=2; extra == \"fast\"", "Vuln_Lib_Alias; python_version < \"3\""];
    let spec = WheelSpec { tag: "py3-none-any", requires: &requires, requires_python: Some(">=3.8") };
    env.upstream
        .add("webapp", FakeFile::new(described_wheel("webapp", "1.0", spec, README)).uploaded("2024-05-01T10:00:00Z"));
    for v in ["1.0", "1.1"] {
        env.upstream
            .add("vulnlib", FakeFile::new(wheel("vulnlib", v, WheelSpec::default())).uploaded("2024-01-01T00:00:00Z"));
    }
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/osv/policy");
    let mut cmd = env.airlock();
    cmd.args(["advisories", "build"]).arg(fixtures).arg("-o").arg(env.path(".airlock/advisories.sqlite.zst"));
    cmd.env("SOURCE_DATE_EPOCH", NOW).assert().success();
    env.manifest(&format!(
        "base_url = \"https://pypi.example.org/\"\n{extra}[select]\npackages = [\"webapp\", \"vulnlib\"]\n[advisories]\nmax_age_days = 30\n[policy]\nblock = \"none\"\nfail_on = \"none\"\n"
    ));
    env
}

fn build(env: &Env) {
    env.airlock().arg("build").env("SOURCE_DATE_EPOCH", NOW).assert().success();
}

fn page(env: &Env, rel: &str) -> String {
    std::fs::read_to_string(env.public().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn a_project_page_shows_the_readme_safely_and_links_the_mirror() {
    let env = mirror("");
    build(&env);
    let web = page(&env, "projects/webapp/index.html");
    // The README, rendered.
    assert!(web.contains("<h1>Webapp</h1>") && web.contains("<em>small</em>"), "{web}");
    assert!(web.contains("<code>pip install webapp</code>") && web.contains("<pre><code>import webapp"));
    assert!(web.contains("<a href=\"https://example.org/docs\" rel=\"noopener noreferrer nofollow\">the docs</a>"));
    assert!(web.contains("<td>1</td>"), "tables render: {web}");
    assert!(web.contains("<a href=\"https://cdn.example.org/logo.png\""), "an image is a link, never loaded: {web}");
    // None of the hostile markup.
    for bad in ["PWNED", "<script", "onerror", "onclick", "onload", "javascript:", "<img", "<iframe", "<svg"] {
        assert!(!web.contains(bad), "{bad} survived: {web}");
    }
    // Facts, dependencies (mirrored ones linked, extras and markers shown), the install command.
    assert!(web.contains("generated for airlock tests") && web.contains("Python &gt;=3.8"), "{web}");
    assert!(web.contains("<a href=\"../vulnlib/index.html\">vulnlib</a> <code>&gt;=1.0</code>"), "{web}");
    assert!(
        web.contains("notmirrored <code>&gt;=2; extra == &quot;fast&quot;</code>"),
        "not mirrored, not linked: {web}"
    );
    assert!(web.contains("<a href=\"https://example.org/webapp\" rel=\"noopener noreferrer nofollow\">Source</a>"));
    assert!(web.contains("pip install --index-url https://pypi.example.org/simple/ webapp"), "{web}");
    assert!(web.contains("py3-none-any") && web.contains("2024-05-01 10:00 UTC"), "{web}");
    assert!(web.contains("<a href=\"../../packages/webapp/webapp-1.0-py3-none-any.whl\">"), "{web}");
    // vulnlib: used by webapp, and its advisories with severity and upgrade target.
    let vuln = page(&env, "projects/vulnlib/index.html");
    assert!(vuln.contains("<a href=\"../webapp/index.html\">webapp</a>"), "reverse dependency: {vuln}");
    assert!(vuln.contains("GHSA-crit-crit-crit") && vuln.contains("sev sev-critical"), "{vuln}");
    assert!(vuln.contains("href=\"../../reports/security.html#v-vulnlib-1.0\""), "{vuln}");
    assert!(vuln.contains("Upgrade to <strong>"), "{vuln}");
    // The search page: the full list without JavaScript, the index as a script.
    let index = page(&env, "projects/index.html");
    assert!(
        index.contains("<a href=\"vulnlib/index.html\">vulnlib</a>")
            && index.contains("<a href=\"webapp/index.html\">webapp</a>")
    );
    let js = page(&env, "projects/index.js");
    assert!(js.starts_with("window.airlockProjects = [[\"vulnlib\",") && js.contains("\"web framework\""), "{js}");
    // The landing page and the report link into the pages.
    assert!(page(&env, "index.html").contains("href=\"projects/webapp/index.html\""));
    assert!(page(&env, "index.html").contains("href=\"projects/index.html\""));
    assert!(page(&env, "reports/security.html").contains("href=\"../projects/vulnlib/index.html\""));
}

/// Same inputs, same bytes; a rerun rewrites only the pages of projects
/// that changed (the others are the served tree's files, linked).
#[test]
fn pages_are_deterministic_and_rewritten_only_when_their_project_changed() {
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (mirror(""), mirror(""));
    build(&a);
    build(&b);
    let pages =
        |env: &Env| tree(&env.public()).into_iter().filter(|(p, _)| p.starts_with("projects/")).collect::<Vec<_>>();
    assert_eq!(pages(&a).len(), 5, "two pages, the list, its index and script");
    assert_eq!(pages(&a), pages(&b));
    let ino = |rel: &str| std::fs::metadata(a.public().join(rel)).unwrap().ino();
    let (web, vuln) = (ino("projects/webapp/index.html"), ino("projects/vulnlib/index.html"));
    a.upstream.add("vulnlib", FakeFile::new(wheel("vulnlib", "2.0", WheelSpec::default())));
    build(&a);
    assert!(page(&a, "projects/vulnlib/index.html").contains("id=\"v-vulnlib-2.0\""));
    assert_ne!(ino("projects/vulnlib/index.html"), vuln, "vulnlib changed: its page is new");
    assert_eq!(ino("projects/webapp/index.html"), web, "webapp did not: its page is the served one");
}

#[test]
fn project_pages_false_writes_none_a_held_release_shows_and_a_custom_template_is_used() {
    let env = mirror("project_pages = false\n");
    build(&env);
    assert!(!env.public().join("projects").exists());
    assert!(page(&env, "index.html").contains("href=\"simple/webapp/\""));
    assert!(!page(&env, "index.html").contains("projects/"));

    let env = mirror("");
    env.upstream
        .add("vulnlib", FakeFile::new(wheel("vulnlib", "3.0", WheelSpec::default())).uploaded("2024-05-31T23:00:00Z"));
    let text =
        std::fs::read_to_string(env.path("mirror.toml")).unwrap().replace("[select]\n", "[select]\nmin_age = \"3d\"\n");
    std::fs::write(env.path("mirror.toml"), text).unwrap();
    build(&env);
    let vuln = page(&env, "projects/vulnlib/index.html");
    assert!(vuln.contains("<h2>Held releases</h2>") && vuln.contains("<td>3.0</td>"), "{vuln}");
    assert!(vuln.contains("<span class=\"tag\">young</span>"), "{vuln}");

    // A `project.html` of the operator's replaces the built-in page (which
    // airlock writes without tera): tera renders theirs.
    let env = mirror("templates = \"custom\"\n");
    std::fs::create_dir_all(env.path("custom")).unwrap();
    std::fs::write(env.path("custom/project.html"), "custom {{ name }} {{ versions | length }}\n").unwrap();
    build(&env);
    assert_eq!(page(&env, "projects/vulnlib/index.html"), "custom vulnlib 2\n");
}

fn chromium() -> Option<&'static str> {
    let found = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| std::process::Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()));
    if found.is_none() {
        eprintln!("skipping: chromium is not installed (.ci/run installs it: apt-get install chromium)");
    }
    found
}

/// The DOM a headless chromium ends with at `url`, and what it logged.
fn dump_dom(chromium: &str, profile: &Path, url: &str) -> (String, String) {
    let out = std::process::Command::new("timeout")
        .args(["120", chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--enable-logging=stderr", "--v=0", "--virtual-time-budget=2000", "--dump-dom", url])
        .output()
        .unwrap();
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn in_chromium_the_readme_runs_nothing_and_search_opens_with_the_matches() {
    let Some(chromium) = chromium() else { return };
    let env = mirror("");
    build(&env);
    let url = |rel: &str| format!("file://{}/{rel}", std::fs::canonicalize(env.public()).unwrap().display());
    let (dom, log) = dump_dom(chromium, &env.path("profile-1"), &url("projects/webapp/index.html"));
    assert!(dom.contains("<h1>Webapp</h1>"), "the README is shown: {dom}");
    assert!(dom.contains("<title>webapp · test mirror</title>"), "no hostile markup ran: {dom}");
    assert!(!dom.contains("PWNED") && !log.contains("CONSOLE"), "{log}");

    let (dom, log) = dump_dom(chromium, &env.path("profile-2"), &url("projects/index.html?q=framework"));
    assert!(!log.contains("CONSOLE"), "{log}");
    let hits = dom.split("<ul id=\"hits\"").nth(1).and_then(|s| s.split("</ul>").next()).unwrap_or_default();
    assert!(hits.contains(">webapp</a>") && !hits.contains(">vulnlib</a>"), "only the match: {dom}");
    assert!(dom.contains("1 match"), "{dom}");
    assert!(dom.contains("<ul id=\"all\" class=\"projects\" hidden=\"\">"), "the full list is hidden: {dom}");
    // Without a query (and, as the page's source shows, without JavaScript) the full list.
    let (dom, _) = dump_dom(chromium, &env.path("profile-3"), &url("projects/index.html"));
    assert!(dom.contains("<ul id=\"hits\" class=\"projects\" hidden=\"\">"), "{dom}");
}
