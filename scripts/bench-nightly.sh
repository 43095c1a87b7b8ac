#!/usr/bin/env bash
# Benchmark an incremental no-change rerun over a large mirror (issue 5):
# 10,000 projects x 10 files in the state, built once from a generated
# file:// upstream, then rebuilt with nothing changed. `--offline` measures
# airlock's local work alone (no upstream at all); the file:// rerun adds
# reading and comparing 10,000 project pages.
#
# usage: scripts/bench-nightly.sh [WORKDIR] [PROJECTS] [FILES_PER_PROJECT]
# WORKDIR defaults to a fresh directory under ${TMPDIR:-/tmp}.
set -euo pipefail
cd "$(dirname "$0")/.."
AIRLOCK=${AIRLOCK:-target/release/airlock}
[ -x "$AIRLOCK" ] || cargo build --release --quiet
work=${1:-$(mktemp -d)}
projects=${2:-10000}
per=${3:-10}
mkdir -p "$work"

if [ ! -e "$work/public" ]; then
    echo "generating $projects projects x $per files in $work/upstream ..."
    python3 - "$work" "$projects" "$per" <<'PY'
import hashlib, json, os, sys
work, projects, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
files = os.path.join(work, "upstream", "files")
os.makedirs(files, exist_ok=True)
names = []
for p in range(projects):
    name = f"project-{p:05d}"
    names.append(name)
    entries = []
    for v in range(per):
        fn = f"project_{p:05d}-1.{v}.tar.gz"
        body = f"{fn}\n".encode()
        with open(os.path.join(files, fn), "wb") as f:
            f.write(body)
        entries.append({"filename": fn, "url": f"../../files/{fn}", "hashes": {"sha256": hashlib.sha256(body).hexdigest()},
                        "size": len(body), "upload-time": f"2024-01-{1 + v:02d}T00:00:00Z"})
    d = os.path.join(work, "upstream", "simple", name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "index.v1_json"), "w") as f:
        json.dump({"meta": {"api-version": "1.1"}, "name": name, "files": entries}, f)
with open(os.path.join(work, "requirements.txt"), "w") as f:
    f.write("".join(n + "\n" for n in names))
with open(os.path.join(work, "mirror.toml"), "w") as f:
    f.write(f'[mirror]\nupstream = "file://{work}/upstream/simple/"\n[select]\nrequirements = ["requirements.txt"]\n')
PY
    echo "first build ..."
    /usr/bin/time -f "first build: %e s wall, %M KiB peak" "$AIRLOCK" -q build -c "$work/mirror.toml"
fi

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run() {
    for _ in 1 2 3 4 5; do
        /usr/bin/time -f "%e" "$AIRLOCK" -q "$@" 2>&1 >/dev/null | tail -1
    done | median
}
echo "no-change rerun, --offline (local work only): $(run build -c "$work/mirror.toml" --offline) s median of 5"
echo "no-change rerun, file:// upstream (10,000 pages read and compared): $(run build -c "$work/mirror.toml") s median of 5"
