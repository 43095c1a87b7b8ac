#!/usr/bin/env bash
# airlock side by side with the tools its users would otherwise pick (issue
# 15), in one session, interleaved runs, medians. Every peer is installed
# from PyPI into scripts/.peers (never into the test suite); without the
# network the peers are skipped with a message and exit is 0.
#
#   mirror   900 wheels (300 projects x 3 versions, scripts/peers/upstream.py
#            on 127.0.0.1) at 0 and 20 ms per request: airlock build,
#            bandersnatch mirror (10 workers), pip download; then no-change
#            reruns: airlock and bandersnatch through the upstream's serials,
#            airlock against the same upstream without serials, pip download
#            again; the requests each made, as the upstream counted them
#   index    the 71,408 real filenames: airlock index (hashes every file),
#            dumb-pypi (renders from the name list), dir2pi (symlinks the
#            files it can split into name and version); a fresh output each
#            run, then airlock rerun into its own output
#   verify   a 1 GiB tree: airlock verify against sha256sum (one process,
#            and one per core)
#   check    30 pins against the pypa advisory database: airlock advisories
#            check against scripts/peers/osv_check.py (packaging + PyYAML)
#
# usage: scripts/bench-peers.sh [SECTION...]   (default: all four)
# RUNS (default 5) sets the runs per case; WORK a directory to keep (on
# tmpfs by default, like the figures in docs/BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
AIRLOCK=${AIRLOCK:-$repo/target/release/airlock}
[ -x "$AIRLOCK" ] || cargo build --release --quiet
runs=${RUNS:-5}
sections=${*:-mirror index verify check}
work=${WORK:-$(mktemp -d -p /dev/shm)}
mkdir -p "$work"
server_pid=
cleanup() { [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true; [ -n "${WORK:-}" ] || rm -rf "$work"; }
trap cleanup EXIT

peers=$repo/scripts/.peers
if [ ! -x "$peers/bin/bandersnatch" ] || [ ! -x "$peers/bin/dir2pi" ] || [ ! -x "$peers/bin/dumb-pypi" ]; then
    echo "installing peers into scripts/.peers ..."
    { python3 -m venv "$peers" && "$peers/bin/pip" install --quiet bandersnatch dumb-pypi pip2pi packaging pyyaml; } \
        || { echo "skipping: cannot install the peers from PyPI (no network?)"; exit 0; }
fi
echo "peers: $("$peers/bin/pip" list 2>/dev/null | awk '$1 ~ /^(bandersnatch|dumb-pypi|pip2pi|pip|packaging|PyYAML)$/ {printf "%s %s, ", $1, $2}')airlock $("$AIRLOCK" --version | awk '{print $2}')"
echo "runs per case: $runs, work: $work"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# time_into FILE COMMAND...: append "seconds peak-KiB" of one run to FILE.
time_into() {
    local out=$1; shift
    /usr/bin/time -f "%e %M" -o "$work/.time" "$@" > "$work/.log" 2>&1 \
        || { echo "failed: $* (log: $work/.log)"; tail -5 "$work/.log"; exit 1; }
    cat "$work/.time" >> "$out"
}
report() { # label, results file, [requests file]
    local label=$1 file=$2 reqs=${3:-}
    local s kb
    s=$(awk '{print $1}' "$file" | median); kb=$(awk '{print $2}' "$file" | median)
    printf '  %-52s %7s s  %5s MiB' "$label" "$s" "$((kb / 1024))"
    [ -z "$reqs" ] || printf '  %5s requests' "$(median < "$reqs")"
    echo
}

start_upstream() { # delay-ms, [--no-serials]
    [ -z "$server_pid" ] || { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; }
    rm -f "$work/port"
    python3 scripts/peers/upstream.py --root "$work/upstream" --port-file "$work/port" --delay-ms "$1" ${2:-} &
    server_pid=$!
    while [ ! -s "$work/port" ]; do sleep 0.05; done
    port=$(cat "$work/port")
    curl -fsS "http://127.0.0.1:$port/_requests" > /dev/null
}
requests_into() { curl -fsS "http://127.0.0.1:$port/_requests" >> "$1"; }

mirror_section() {
    echo "== mirror: 900 wheels from a loopback upstream"
    [ -e "$work/upstream/index.json" ] || python3 scripts/peers/upstream.py --generate "$work/upstream" --projects 300 --versions 3
    python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
projects = list(json.load(open(f"{work}/upstream/index.json")))
open(f"{work}/projects.txt", "w").write("".join(p + "\n" for p in projects))
for v in range(3):
    open(f"{work}/pins-1.{v}.txt", "w").write("".join(f"{p}==1.{v}\n" for p in projects))
PY
    for delay in 0 20; do
        local r=$work/results-$delay; rm -rf "$r"; mkdir -p "$r"
        for round in $(seq "$runs"); do
            start_upstream "$delay"
            # airlock: a first build, then a rerun with nothing changed
            # (the upstream's serials), then one against the same upstream
            # with serials switched off (conditional page requests).
            rm -rf "$work/a"; mkdir -p "$work/a"; cp "$work/projects.txt" "$work/a/requirements.txt"
            printf '[mirror]\nupstream = "http://127.0.0.1:%s/simple/"\n[select]\nrequirements = ["requirements.txt"]\n' "$port" > "$work/a/mirror.toml"
            time_into "$r/airlock-first" "$AIRLOCK" -q build -c "$work/a/mirror.toml"; requests_into "$r/airlock-first.req"
            time_into "$r/airlock-rerun" "$AIRLOCK" -q build -c "$work/a/mirror.toml"; requests_into "$r/airlock-rerun.req"
            # bandersnatch, 10 workers, its allowlist naming the same projects.
            rm -rf "$work/b"; mkdir -p "$work/b"
            { printf '[mirror]\ndirectory = %s/b/mirror\nmaster = http://127.0.0.1:%s\nallow-non-https = true\n' "$work" "$port"
              printf 'json = false\nrelease-files = true\nworkers = 10\nhash-index = false\nsimple-format = ALL\n'
              printf 'stop-on-error = true\ntimeout = 30\nglobal-timeout = 1800\nstorage-backend = filesystem\ncompare-method = hash\n'
              printf '[plugins]\nenabled =\n    allowlist_project\n[allowlist]\npackages =\n'
              sed 's/^/    /' "$work/projects.txt"; } > "$work/b/bandersnatch.conf"
            time_into "$r/bandersnatch-first" "$peers/bin/bandersnatch" -c "$work/b/bandersnatch.conf" mirror; requests_into "$r/bandersnatch-first.req"
            time_into "$r/bandersnatch-rerun" "$peers/bin/bandersnatch" -c "$work/b/bandersnatch.conf" mirror; requests_into "$r/bandersnatch-rerun.req"
            # pip download: one call per version column (pip takes one
            # version of a project per call), no cache.
            rm -rf "$work/p"; mkdir -p "$work/p"
            local pip=("$peers/bin/pip" download --quiet --no-deps --no-cache-dir --disable-pip-version-check -d "$work/p" -i "http://127.0.0.1:$port/simple/")
            time_into "$r/pip-first" sh -c "for v in 0 1 2; do \"\$@\" -r $work/pins-1.\$v.txt || exit 1; done" sh "${pip[@]}"; requests_into "$r/pip-first.req"
            time_into "$r/pip-rerun" sh -c "for v in 0 1 2; do \"\$@\" -r $work/pins-1.\$v.txt || exit 1; done" sh "${pip[@]}"; requests_into "$r/pip-rerun.req"
            start_upstream "$delay" --no-serials
            sed -i "s/127.0.0.1:[0-9]*/127.0.0.1:$port/" "$work/a/mirror.toml"
            "$AIRLOCK" -q build -c "$work/a/mirror.toml" > /dev/null 2>&1; curl -fsS "http://127.0.0.1:$port/_requests" > /dev/null
            time_into "$r/airlock-rerun-noserial" "$AIRLOCK" -q build -c "$work/a/mirror.toml"; requests_into "$r/airlock-rerun-noserial.req"
        done
        echo "-- $delay ms per request (median of $runs)"
        report "airlock build, first" "$r/airlock-first" "$r/airlock-first.req"
        report "bandersnatch mirror (10 workers), first" "$r/bandersnatch-first" "$r/bandersnatch-first.req"
        report "pip download, first" "$r/pip-first" "$r/pip-first.req"
        report "airlock build, no-change rerun (serials)" "$r/airlock-rerun" "$r/airlock-rerun.req"
        report "airlock build, no-change rerun (no serials)" "$r/airlock-rerun-noserial" "$r/airlock-rerun-noserial.req"
        report "bandersnatch mirror, no-change rerun (serials)" "$r/bandersnatch-rerun" "$r/bandersnatch-rerun.req"
        report "pip download, rerun (files already there)" "$r/pip-rerun" "$r/pip-rerun.req"
    done
}

index_section() {
    echo "== index: the 71,408 real PyPI filenames, each file its name as bytes"
    local list=../shared/data/pypi-filenames/package-list-huge.txt
    [ -f "$list" ] || { echo "  skipping: $list is absent"; return; }
    if [ ! -d "$work/names" ]; then
        python3 - "$list" "$work/names" <<'PY'
import os, sys
names = [l.strip() for l in open(sys.argv[1]) if l.strip() and "/" not in l]
os.makedirs(sys.argv[2])
for n in names:
    with open(os.path.join(sys.argv[2], n), "wb") as f:
        f.write(n.encode())
PY
        ls "$work/names" > "$work/names.txt"
        # dir2pi stops at the first name it cannot split into name and
        # version; it gets the 71,336 it accepts (hard links, same bytes).
        mkdir "$work/names-dir2pi"
        "$peers/bin/python" - "$work/names" "$work/names-dir2pi" <<'PY'
import os, sys
from libpip2pi.commands import file_to_package
for n in os.listdir(sys.argv[1]):
    try:
        file_to_package(n)
    except Exception:
        continue
    os.link(os.path.join(sys.argv[1], n), os.path.join(sys.argv[2], n))
PY
    fi
    if [ ! -d "$work/names-small" ]; then
        mkdir "$work/names-small"
        ls "$work/names" | sed -n 1,4000p | while read -r n; do ln "$work/names/$n" "$work/names-small/$n"; done
    fi
    # Every run writes a fresh output (the output and the trees airlock
    # keeps beside it removed first), as dumb-pypi's does: a rerun into an
    # existing output also removes the tree before the previous one.
    fresh() { rm -rf "$work/out" "$work/.out.airlock" "$work/names-dir2pi/simple"; }
    local r=$work/results-index; rm -rf "$r"; mkdir -p "$r"
    for round in $(seq "$runs"); do
        fresh; time_into "$r/airlock" "$AIRLOCK" -q index "$work/names" --out "$work/out"
        fresh; time_into "$r/dumb-pypi" "$peers/bin/dumb-pypi" --package-list "$work/names.txt" \
            --packages-url https://example.invalid/packages/ --output-dir "$work/out"
        fresh; time_into "$r/dir2pi" "$peers/bin/dir2pi" "$work/names-dir2pi"
        fresh; time_into "$r/airlock-small" "$AIRLOCK" -q index "$work/names-small" --out "$work/out"
    done
    # A rerun into its own output, as a nightly job runs it (the first run
    # makes the output and is not counted).
    fresh; "$AIRLOCK" -q index "$work/names" --out "$work/out" > /dev/null 2>&1
    for round in $(seq "$runs"); do
        time_into "$r/airlock-rerun" "$AIRLOCK" -q index "$work/names" --out "$work/out"
    done
    fresh
    report "airlock index (hashes, PEP 503 + 691 pages, links)" "$r/airlock"
    report "airlock index, rerun into its own output" "$r/airlock-rerun"
    report "dumb-pypi (from the name list)" "$r/dumb-pypi"
    report "dir2pi ($(ls "$work/names-dir2pi" | wc -l) it accepts; symlinks, PEP 503)" "$r/dir2pi"
    report "airlock index, 4,000 of the files" "$r/airlock-small"
}

verify_section() {
    echo "== verify: a 1 GiB tree (64 x 16 MiB)"
    local v=$work/verify
    SETUP_ONLY=1 AIRLOCK="$AIRLOCK" scripts/bench-verify.sh "$v" > /dev/null
    local r=$work/results-verify; rm -rf "$r"; mkdir -p "$r"
    for round in $(seq "$runs"); do
        time_into "$r/airlock" "$AIRLOCK" -q verify -c "$v/mirror.toml"
        time_into "$r/sha256sum" sh -c "sha256sum $v/public/packages/big/*.tar.gz"
        time_into "$r/sha256sum-p" sh -c "ls $v/public/packages/big/*.tar.gz | xargs -P $(nproc) -n 8 sha256sum"
    done
    report "airlock verify (every file against the state)" "$r/airlock"
    report "sha256sum, one process" "$r/sha256sum"
    report "sha256sum, one process per core" "$r/sha256sum-p"
}

check_section() {
    echo "== check: 30 pins against the pypa advisory database"
    local vulns=../shared/data/pypa-advisory-database/vulns
    [ -d "$vulns" ] || { echo "  skipping: $vulns is absent"; return; }
    local c=$work/check; mkdir -p "$c"
    [ -e "$c/adv.sqlite.zst" ] || "$AIRLOCK" -q advisories build "$vulns" -o "$c/adv.sqlite.zst"
    # The first 30 packages with a vulnerable version: each pin is the
    # first version an advisory lists, so both sides have findings to agree on.
    python3 - "$vulns" > "$c/pins.txt" <<'PY'
import glob, os, sys, yaml
out = []
for d in sorted(os.listdir(sys.argv[1])):
    for path in sorted(glob.glob(os.path.join(sys.argv[1], d, "*.yaml"))):
        versions = [v for a in yaml.safe_load(open(path)).get("affected", []) for v in a.get("versions") or []]
        if versions:
            out.append(f"{d} {versions[0]}")
            break
    if len(out) == 30:
        break
print("\n".join(out))
PY
    "$AIRLOCK" advisories check --snapshot "$c/adv.sqlite.zst" < "$c/pins.txt" > /dev/null  # fills the cache
    local r=$work/results-check; rm -rf "$r"; mkdir -p "$r"
    for round in $(seq "$runs"); do
        time_into "$r/airlock" sh -c "\"$AIRLOCK\" advisories check --snapshot $c/adv.sqlite.zst < $c/pins.txt"
        time_into "$r/python" sh -c "\"$peers/bin/python\" scripts/peers/osv_check.py $vulns < $c/pins.txt"
    done
    local a p
    a=$("$AIRLOCK" advisories check --snapshot "$c/adv.sqlite.zst" < "$c/pins.txt" | python3 -c "import json,sys; print(sum(len(json.loads(l)[\"advisories\"]) for l in sys.stdin))")
    p=$("$peers/bin/python" scripts/peers/osv_check.py "$vulns" < "$c/pins.txt" | wc -l)
    report "airlock advisories check (cached snapshot), $a findings" "$r/airlock"
    report "osv_check.py (packaging, PyYAML), $p findings" "$r/python"
}

for s in $sections; do "${s}_section"; done
