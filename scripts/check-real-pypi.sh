#!/usr/bin/env bash
# Resolution against the real PyPI (NOT part of the hermetic test suite: it
# needs the network, and says so; it exits 0 with a message when PyPI cannot
# be reached).
#
# Mirrors pandas, boto3 and django for CPython 3.12 on manylinux_2_28_x86_64,
# manylinux_2_28_aarch64, macosx_14_0_arm64 and win_amd64 with
# `dependencies = "resolve"` and `installable = "fail"`, then checks that
# `uv pip compile` resolves each environment from the mirror to the same pins
# as from PyPI. Prints timings for airlock's resolution (`airlock plan`, cold
# and warm) next to `uv pip compile` for the same four environments.
#
# usage: scripts/check-real-pypi.sh [WORKDIR] [--all]
#   --all   also build with dependencies = "all" and compare the bytes mirrored
#           (downloads several GiB)
set -euo pipefail
cd "$(dirname "$0")/.."
AIRLOCK=${AIRLOCK:-$PWD/target/release/airlock}
INDEX=${PYPI_INDEX:-https://pypi.org/simple/}
work=""
all=false
for arg in "$@"; do
    case "$arg" in
        --all) all=true ;;
        *) work=$arg ;;
    esac
done
work=${work:-$(mktemp -d)}
mkdir -p "$work"

scripts/pypi-reachable.sh "$INDEX" "the real-PyPI check" || exit 0
[ -x "$AIRLOCK" ] || cargo build --release --quiet
command -v uv >/dev/null || { echo "uv is needed: python3 -m pip install uv" >&2; exit 1; }

envs=("manylinux_2_28_x86_64 x86_64-manylinux_2_28" "manylinux_2_28_aarch64 aarch64-manylinux_2_28"
      "macosx_14_0_arm64 aarch64-apple-darwin" "win_amd64 x86_64-pc-windows-msvc")
write_manifest() { # DIR MODE
    cat > "$1/mirror.toml" <<TOML
[mirror]
name = "real PyPI check"
upstream = "$INDEX"
jobs = 16
[select]
packages = ["pandas", "boto3", "django"]
python = ["3.12"]
platforms = ["manylinux_2_28_x86_64", "manylinux_2_28_aarch64", "macosx_14_0_arm64", "win_amd64"]
sdists = false
latest = 1
dependencies = "$2"
installable = "fail"
TOML
}
now() { python3 -c 'import time; print(time.monotonic())'; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$(now)"; }

mkdir -p "$work/resolve"
write_manifest "$work/resolve" resolve
echo "== airlock plan (resolution of 4 environments), cold metadata cache"
t=$(now); "$AIRLOCK" -q plan -c "$work/resolve/mirror.toml" > "$work/plan-cold.txt"; echo "airlock plan cold: $(since "$t") s"
grep '^@' "$work/plan-cold.txt" | cut -c1-160
echo "== airlock build (resolve, fetch, verify, installability check, publish)"
t=$(now); "$AIRLOCK" -q build -c "$work/resolve/mirror.toml"; echo "airlock build: $(since "$t") s"
t=$(now); "$AIRLOCK" -q plan -c "$work/resolve/mirror.toml" > /dev/null; echo "airlock plan warm (metadata cached in the state): $(since "$t") s"
du -sb "$work/resolve/.airlock/store" | awk '{printf "bytes mirrored with resolve: %.1f MiB\n", $1/1048576}'
python3 -c "
import json; r = json.load(open('$work/resolve/public/reports/installability.json'))
print('installability:', r['summary'])"

echo "== uv pip compile, the same 4 environments, from PyPI (cold, then warm cache)"
export UV_CACHE_DIR="$work/uv-cache" UV_PYTHON_DOWNLOADS=never
printf 'pandas\nboto3\ndjango\n' > "$work/req.in"
compile() { # INDEX PLATFORM
    uv pip compile --no-config --no-header --no-annotate --only-binary :all: --python-version 3.12 \
        --python-platform "$2" --index-url "$1" "$work/req.in" 2>/dev/null
}
for pass in cold warm; do
    [ "$pass" = cold ] && rm -rf "$UV_CACHE_DIR"
    t=$(now)
    for e in "${envs[@]}"; do set -- $e; compile "$INDEX" "$2" > "$work/uv-pypi-$1.txt"; done
    echo "uv pip compile x4 $pass: $(since "$t") s"
done

echo "== each environment from the mirror resolves the same pins as from PyPI"
"$AIRLOCK" serve "$work/resolve/public" --port 0 > "$work/serve.txt" &
serve_pid=$!
trap 'kill $serve_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q "serving" "$work/serve.txt" && break; sleep 0.1; done
mirror="$(sed -n 's/.* at \(http[^ ]*\) .*/\1/p' "$work/serve.txt")simple/"
status=0
for e in "${envs[@]}"; do
    set -- $e
    if compile "$mirror" "$2" > "$work/uv-mirror-$1.txt" && diff -q "$work/uv-pypi-$1.txt" "$work/uv-mirror-$1.txt" >/dev/null; then
        echo "cp312-$1: same pins ($(grep -c '==' "$work/uv-mirror-$1.txt") packages)"
    else
        echo "cp312-$1: DIFFERENT (see $work/uv-pypi-$1.txt and $work/uv-mirror-$1.txt)"; status=1
    fi
done

if $all; then
    echo "== dependencies = \"all\" for comparison (every version any selected wheel allows)"
    mkdir -p "$work/all"
    write_manifest "$work/all" all
    sed -i 's/^installable = "fail"/installable = "warn"/' "$work/all/mirror.toml"
    t=$(now); "$AIRLOCK" -q build -c "$work/all/mirror.toml" || true; echo "airlock build (all): $(since "$t") s"
    du -sb "$work/all/.airlock/store" | awk '{printf "bytes mirrored with all: %.1f MiB\n", $1/1048576}'
fi
exit $status
