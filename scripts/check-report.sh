#!/usr/bin/env bash
# Check the HTML security report in a real headless browser (Debian's chromium):
# load it from disk (file://), take a screenshot, and fail on any console
# message (errors, uncaught exceptions, Content-Security-Policy violations:
# the page's own script never logs). Also check that the inline script ran
# (the filter controls are shown) and that with JavaScript disabled the page
# still holds every finding.
#
# usage: scripts/check-report.sh [REPORT.html] [SCREENSHOT.png] [PAGE.png]
#
# Without REPORT.html, a demo mirror is built hermetically and its report is
# checked: a file:// upstream indexed by `airlock index` from generated wheels,
# and advisories from tests/fixtures/osv (including hostile ones whose text
# carries <script> and javascript: links). The screenshot defaults to a
# temporary file; docs/security-report.png is the one the README shows. With
# PAGE.png (demo mirror only), a screenshot of the vulnlib project page too
# (docs/project-page.png).
set -euo pipefail
cd "$(dirname "$0")/.."

CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [ -z "$CHROMIUM" ]; then
    echo "chromium not found: apt-get install -y --no-install-recommends chromium" >&2
    exit 2
fi
work=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
report=${1:-}
shot=${2:-$work/security-report.png}
page_shot=${3:-}

if [ -z "$report" ]; then
    AIRLOCK=${AIRLOCK:-target/debug/airlock}
    [ -x "$AIRLOCK" ] || cargo build --quiet
    mkdir -p "$work/dist"
    python3 - "$work/dist" <<'PY'
import base64, hashlib, sys, zipfile
out = sys.argv[1]
README = """Summary: Parse and render vulnerable things, quickly
Keywords: parsing,demo
Project-URL: Source, https://example.org/vulnlib
Description-Content-Type: text/markdown

# vulnlib

A **demo** library for the airlock report: `pip install vulnlib`.

```python
import vulnlib
vulnlib.parse("<b>text</b>")
```

<script>document.title = "PWNED"</script>

See [the documentation](https://example.org/docs).
"""
def wheel(name, version):
    dist = f"{name}-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    if name == "cleanlib":
        meta += "Summary: Depends on vulnlib\nRequires-Dist: vulnlib>=1.1\nRequires-Dist: colorama; sys_platform == 'win32'\n"
    if name == "vulnlib":
        meta += "Requires-Python: >=3.9\n" + README
    files = {
        f"{name}/__init__.py": f"__version__ = {version!r}\n",
        f"{dist}/METADATA": meta,
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: check-report\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(
        f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(b.encode()).digest()).rstrip(b'=').decode()},{len(b)}\n"
        for p, b in files.items()) + f"{dist}/RECORD,,\n"
    with zipfile.ZipFile(f"{out}/{name}-{version}-py3-none-any.whl", "w") as z:
        for p, b in {**files, f"{dist}/RECORD": record}.items():
            z.writestr(zipfile.ZipInfo(p, (2024, 1, 1, 0, 0, 0)), b)
for name, version in [("vulnlib", "1.0"), ("vulnlib", "1.1"), ("vulnlib", "2.0"), ("nosev", "1.0"), ("cleanlib", "3.0")]:
    wheel(name, version)
PY
    "$AIRLOCK" -q index "$work/dist" --out "$work/upstream" --name "demo upstream"
    "$AIRLOCK" -q advisories build tests/fixtures/osv/policy tests/fixtures/osv/hostile -o "$work/state/advisories.sqlite.zst"
    cat > "$work/mirror.toml" <<TOML
[mirror]
name = "airlock demo mirror"
upstream = "file://$work/upstream/simple/"
output = "public"
state = "state"
[select]
packages = ["vulnlib", "nosev", "cleanlib"]
[advisories]
max_age_days = 3650
[policy]
block = "critical"
[[policy.ignore]]
id = "PYSEC-2099-2"
reason = "the error pages are disabled in production"
expires = "2099-12-31"
TOML
    "$AIRLOCK" -q build -c "$work/mirror.toml"
    report="$work/public/reports/security.html"
fi
[ -f "$report" ] || { echo "no report at $report" >&2; exit 2; }
url="file://$(cd "$(dirname "$report")" && pwd)/$(basename "$report")"
# The page without its script, beside the original (same relative links):
# what a reader with JavaScript off gets.
nojs="$(dirname "$report")/.nojs-$$.html"
python3 -c 'import re,sys; t=open(sys.argv[1]).read(); open(sys.argv[2],"w").write(re.sub(r"<script>.*?</script>", "", t, flags=re.S))' "$report" "$nojs"
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"; rm -f "$nojs"' EXIT

browse() {
    # The flags keep a headless chromium off the network and quiet.
    timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$work/profile-$1" --enable-logging=stderr --v=0 --window-size=1280,1400 "${@:3}" "$2"
}

browse shot "$url" --screenshot="$shot" 2> "$work/shot.log" > /dev/null
browse dom "$url" --dump-dom 2> "$work/dom.log" > "$work/dom.html"
browse nojs "file://$(cd "$(dirname "$nojs")" && pwd)/$(basename "$nojs")" --dump-dom 2> /dev/null > "$work/nojs.html"

status=0
if grep -h "CONSOLE" "$work/shot.log" "$work/dom.log"; then
    echo "FAIL: the page wrote to the console (above)" >&2
    status=1
fi
[ -s "$shot" ] || { echo "FAIL: no screenshot" >&2; status=1; }
grep -q '<div id="controls">' "$work/dom.html" || { echo "FAIL: the inline script did not run (filter controls still hidden)" >&2; status=1; }
count() { grep -o "$1" "$2" | wc -l || true; }
rows_js=$(count ' data-rank=' "$work/dom.html")
rows_nojs=$(count ' data-rank=' "$work/nojs.html")
if [ "$rows_js" -eq 0 ] || [ "$rows_nojs" -ne "$rows_js" ]; then
    echo "FAIL: $rows_nojs vulnerable versions without JavaScript, $rows_js with it" >&2
    status=1
fi
if grep -qi '<img\|href="javascript:' "$work/dom.html"; then
    echo "FAIL: hostile markup is live in the DOM" >&2
    status=1
fi
if [ -n "$page_shot" ]; then
    page="$(dirname "$report")/../projects/vulnlib/index.html"
    browse page "file://$(cd "$(dirname "$page")" && pwd)/index.html" --screenshot="$page_shot" 2> "$work/page.log" > /dev/null
    if grep -h "CONSOLE" "$work/page.log"; then echo "FAIL: the project page wrote to the console" >&2; status=1; fi
    [ -s "$page_shot" ] || { echo "FAIL: no project page screenshot" >&2; status=1; }
fi
[ "$status" -eq 0 ] && echo "ok: $report renders without console messages ($rows_js vulnerable versions, with and without JavaScript); screenshot: $shot"
exit "$status"
