#!/usr/bin/env bash
# Benchmark `airlock verify` on a ~1 GiB published tree against coreutils
# sha256sum over the same files (one process, and one per core). Also the
# mirror's whole-build figure for that tree.
#
# usage: scripts/bench-verify.sh [WORKDIR] [FILES] [MIB_PER_FILE]
# SETUP_ONLY=1 only builds the tree in WORKDIR.
set -euo pipefail
cd "$(dirname "$0")/.."
AIRLOCK=${AIRLOCK:-target/release/airlock}
[ -x "$AIRLOCK" ] || cargo build --release --quiet
work=${1:-$(mktemp -d)}
files=${2:-64}
mib=${3:-16}
mkdir -p "$work"
if [ ! -e "$work/public" ]; then
    python3 - "$work" "$files" "$mib" <<'PY'
import hashlib, json, os, sys
work, files, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(f"{work}/upstream/files", exist_ok=True)
os.makedirs(f"{work}/upstream/simple/big", exist_ok=True)
entries = []
for i in range(files):
    fn = f"big-1.{i}.tar.gz"
    body = os.urandom(mib << 20)
    open(f"{work}/upstream/files/{fn}", "wb").write(body)
    entries.append({"filename": fn, "url": f"../../files/{fn}", "hashes": {"sha256": hashlib.sha256(body).hexdigest()}, "size": len(body)})
json.dump({"meta": {"api-version": "1.1"}, "name": "big", "files": entries}, open(f"{work}/upstream/simple/big/index.v1_json", "w"))
open(f"{work}/mirror.toml", "w").write(f'[mirror]\nupstream = "file://{work}/upstream/simple/"\n[select]\npackages = ["big"]\n')
PY
    /usr/bin/time -f "build of $files x $mib MiB: %e s wall, %M KiB peak" "$AIRLOCK" -q build -c "$work/mirror.toml"
fi
# SETUP_ONLY=1: build the tree and stop (scripts/bench-peers.sh times it).
[ -z "${SETUP_ONLY:-}" ] || exit 0
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
t() { for _ in 1 2 3 4 5; do /usr/bin/time -f "%e" "$@" 2>&1 >/dev/null | tail -1; done | median; }
tree="$work/public/packages/big"
echo "airlock verify:               $(t "$AIRLOCK" -q verify -c "$work/mirror.toml") s"
echo "sha256sum, one process:       $(t sh -c "sha256sum $tree/*.tar.gz") s"
echo "sha256sum, one per core:      $(t sh -c "ls $tree/*.tar.gz | xargs -P $(nproc) -n 8 sha256sum") s"
# Bundles of the same tree: wall time and peak memory (the target is a flat,
# bounded peak whatever the bundle size).
rm -f "$work/full.tar.zst"; rm -rf "$work/imported" "$work/.imported.airlock"
/usr/bin/time -f "airlock export --full:         %e s, %M KiB peak" "$AIRLOCK" -q export -c "$work/mirror.toml" --full -o "$work/full.tar.zst"
/usr/bin/time -f "airlock import:                %e s, %M KiB peak" "$AIRLOCK" -q import "$work/full.tar.zst" --into "$work/imported"
