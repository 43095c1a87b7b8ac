#!/usr/bin/env bash
# `airlock index` against dumb-pypi on the 71,408 real PyPI filenames of
# ../shared/data/pypi-filenames (issue 15), side by side, on tmpfs:
# airlock hashes every file (each is its own name as bytes) and writes both
# simple formats; dumb-pypi renders from the name list. Also airlock's peak
# on a small tree (4,000 files). Peers are installed from PyPI into
# scripts/.peers (not into the test suite); without network they are
# skipped with a message.
#
# usage: scripts/bench-index.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
AIRLOCK=${AIRLOCK:-target/release/airlock}
[ -x "$AIRLOCK" ] || cargo build --release --quiet
runs=${1:-5}
list=../shared/data/pypi-filenames/package-list-huge.txt
[ -f "$list" ] || { echo "skipping: $list is absent"; exit 0; }
work=$(mktemp -d -p /dev/shm)
trap 'rm -rf "$work"' EXIT

python3 - "$list" "$work" <<'PY'
import os, sys
names = [l.strip() for l in open(sys.argv[1]) if l.strip() and "/" not in l]
for d, subset in (("big", names), ("small", names[:4000])):
    os.makedirs(os.path.join(sys.argv[2], d), exist_ok=True)
    for n in subset:
        with open(os.path.join(sys.argv[2], d, n), "wb") as f:
            f.write(n.encode())
PY

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
measure() { # label, command...
    local label=$1; shift
    local t=() m=()
    for _ in $(seq "$runs"); do
        rm -rf "$work/out" "$work/.out.airlock"  # a fresh output every run, as dumb-pypi's
        /usr/bin/time -f "%e %M" -o "$work/time" "$@" > /dev/null 2>&1
        read -r s kb < "$work/time"; t+=("$s"); m+=("$kb")
    done
    printf '%-44s %6s s  %6s MiB peak (median of %s)\n' "$label" \
        "$(printf '%s\n' "${t[@]}" | median)" "$(( $(printf '%s\n' "${m[@]}" | median) / 1024 ))" "$runs"
}

measure "airlock index, $(ls "$work/big" | wc -l) files" "$AIRLOCK" -q index "$work/big" --out "$work/out"
measure "airlock index, 4,000 files" "$AIRLOCK" -q index "$work/small" --out "$work/out"

peers=scripts/.peers
if [ ! -x "$peers/bin/dumb-pypi" ]; then
    python3 -m venv "$peers" && "$peers/bin/pip" install --quiet dumb-pypi \
        || { echo "skipping dumb-pypi: cannot install it from PyPI"; exit 0; }
fi
ls "$work/big" > "$work/names.txt"
measure "dumb-pypi, same names" "$peers/bin/dumb-pypi" --package-list "$work/names.txt" \
    --packages-url https://example.invalid/packages/ --output-dir "$work/out"
