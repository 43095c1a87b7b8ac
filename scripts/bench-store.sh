#!/usr/bin/env bash
# Fetch into the object store vs into the local store, on loopback: one
# 1 GiB file (and 64 x 16 MiB) from a file:// upstream, built once with the
# default local store and once with `store = "s3://..."` on moto_server
# (started here on 127.0.0.1; pip install 'moto[server]'). Wall time and
# peak memory of each build (GNU time). moto keeps objects in Python memory
# and bounds the object-store throughput here; the figure that matters is
# the peak RSS, which must stay flat whatever the file size.
#
# usage: scripts/bench-store.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
AIRLOCK=${AIRLOCK:-$PWD/target/release/airlock}
[ -x "$AIRLOCK" ] || cargo build --release --quiet
command -v moto_server >/dev/null || { echo "moto_server not found: pip install 'moto[server]'"; exit 0; }
work=${1:-$(mktemp -d)}
mkdir -p "$work"
python3 - "$work" <<'PY'
import hashlib, json, os, sys
work = sys.argv[1]
for name, files, mib in [("one", 1, 1024), ("many", 64, 16)]:
    up = f"{work}/{name}/upstream"
    os.makedirs(f"{up}/files", exist_ok=True)
    os.makedirs(f"{up}/simple/big", exist_ok=True)
    entries = []
    for i in range(files):
        fn = f"big-1.{i}.tar.gz"
        h = hashlib.sha256()
        with open(f"{up}/files/{fn}", "wb") as f:
            for _ in range(mib):
                block = os.urandom(1 << 20)
                h.update(block)
                f.write(block)
        entries.append({"filename": fn, "url": f"../../files/{fn}", "hashes": {"sha256": h.hexdigest()}, "size": mib << 20})
    json.dump({"meta": {"api-version": "1.1"}, "name": "big", "files": entries}, open(f"{up}/simple/big/index.v1_json", "w"))
PY
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -s "http://127.0.0.1:$port" >/dev/null && break; sleep 0.2; done
curl -s -X PUT "http://127.0.0.1:$port/bench" >/dev/null
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_ENDPOINT_URL="http://127.0.0.1:$port"
for name in one many; do
    for store in local s3; do
        dir="$work/$name/$store"
        rm -rf "$dir"; mkdir -p "$dir"
        line=""
        [ "$store" = s3 ] && line="store = \"s3://bench/$name\""
        printf '[mirror]\nupstream = "file://%s/simple/"\n%s\njobs = 8\n[select]\npackages = ["big"]\n' "$work/$name/upstream" "$line" > "$dir/mirror.toml"
        (cd "$dir" && /usr/bin/time -f "$name ($( [ $name = one ] && echo '1 x 1 GiB' || echo '64 x 16 MiB')), $store store: %e s wall, %M KiB peak RSS" "$AIRLOCK" -q build 2>&1 | tail -1)
    done
done
