#!/usr/bin/env bash
# The README's first command, checked as a new user would (NOT part of the
# hermetic test suite: it needs the real PyPI, says so, and exits 0 with a
# message when PyPI cannot be reached).
#
# Builds the demo mirror from this repo's mirror.toml into a scratch
# directory, serves it, installs `requests` and `jinja2` from it (and from
# nowhere else) into a fresh venv, and imports and uses both.
#
# usage: scripts/check-demo.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
AIRLOCK=${AIRLOCK:-$repo/target/release/airlock}
work=${1:-$(mktemp -d)}
mkdir -p "$work"

scripts/pypi-reachable.sh https://pypi.org/simple/ "the demo check" || exit 0
[ -x "$AIRLOCK" ] || cargo build --release --quiet

cp mirror.toml "$work/mirror.toml"
cd "$work"
echo "== airlock build -c mirror.toml (the demo manifest)"
"$AIRLOCK" build -c mirror.toml
"$AIRLOCK" serve public --port 0 > serve.txt &
serve_pid=$!
trap 'kill $serve_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q "serving" serve.txt && break; sleep 0.1; done
index="$(sed -n 's/.* at \(http[^ ]*\) .*/\1/p' serve.txt)simple/"

echo "== pip install requests jinja2 from the mirror only ($index)"
rm -rf venv
python3 -m venv venv
PIP_CONFIG_FILE=/dev/null venv/bin/pip install --quiet --no-cache-dir --index-url "$index" requests jinja2
venv/bin/python - <<'PY'
from importlib.metadata import version
import jinja2, requests
print(", ".join(f"{p} {version(p)}" for p in ["jinja2", "markupsafe", "requests", "urllib3", "idna", "certifi", "charset-normalizer"]))
assert jinja2.Template("{{ x|e }}").render(x="<b>") == "&lt;b&gt;"
print("import check: ok")
PY
