#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of untrusted input, on the stable
# toolchain: libFuzzer (libfuzzer-sys) with SanitizerCoverage instrumentation
# from `-C passes=sancov-module` (no sanitizer: those need nightly; Rust's own
# checks, overflow checks included, catch what matters here).
#
# usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS   total time, shared among the targets (default 600)
#   TARGET    some of the targets of src/fuzz.rs (default: all)
#
# Corpora live in fuzz/corpus/<target> (seeded on first use from
# tests/fixtures and ../shared/data); a crash lands in fuzz/artifacts/<target>/
# and makes this script exit 1: copy it into tests/fixtures/fuzz/<target>/
# (the test suite replays every file there) and fix the parser.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
total=${1:-600}
shift || true
triple=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$root/fuzz/target}
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
# --target keeps the instrumentation off build scripts.
(cd fuzz && cargo build --release --locked --target "$triple" --quiet)
bin=$CARGO_TARGET_DIR/$triple/release/airlock-fuzz

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(sed -n '/^pub const TARGETS/,/^];/p' src/fuzz.rs | grep -o '"[a-z0-9-]*"' | tr -d '"')
fi
per=$(( total / ${#targets[@]} ))
[ "$per" -ge 1 ] || per=1

seeds() { # TARGET DIR: a starting corpus, from the repository and ../shared/data
    local t=$1 d=$2 data=$root/../shared/data fx=$root/tests/fixtures
    case $t in
        filename)
            if [ -f "$data/pypi-filenames/package-list-huge.txt" ]; then
                awk 'NR % 40 == 1' "$data/pypi-filenames/package-list-huge.txt" | split -l 1 - "$d/f-"
            else
                printf 'requests-2.32.3-py3-none-any.whl' > "$d/one"
            fi ;;
        manifest) cp "$root/mirror.toml" "$d/demo.toml" ;;
        requirements) printf 'requests>=2.31\n-c pins.txt\nflask[async]; python_version >= "3.8" \\\n  --hash=sha256:00\n' > "$d/req" ;;
        pep691) printf '{"meta":{"api-version":"1.1"},"name":"p","versions":["1.0"],"files":[{"filename":"p-1.0-py3-none-any.whl","url":"../../p-1.0-py3-none-any.whl","hashes":{"sha256":"00"},"requires-python":">=3.8","core-metadata":{"sha256":"00"},"yanked":"bad","size":3,"upload-time":"2024-01-01T00:00:00Z"}]}' > "$d/page" ;;
        pep503) printf '<!DOCTYPE html><html><body><a href="../../p-1.0.tar.gz#sha256=00" data-requires-python="&gt;=3.8" data-yanked="" data-core-metadata="sha256=00">p-1.0.tar.gz</a></body></html>' > "$d/page" ;;
        metadata) printf 'Metadata-Version: 2.1\nName: p\nVersion: 1.0\nRequires-Python: >=3.8\nRequires-Dist: q>=1; extra == "x"\nRequires-Dist: r; sys_platform == "win32"\n' > "$d/meta" ;;
        wheel|sdist|osv-zip) python3 - "$t" "$d" <<'PY'
import io, sys, tarfile, zipfile, pathlib
t, d = sys.argv[1], pathlib.Path(sys.argv[2])
meta = b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\nRequires-Dist: q\n"
if t == "wheel":
    with zipfile.ZipFile(d / "w.whl", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("pkg/__init__.py", b"")
        z.writestr("pkg-1.0.dist-info/METADATA", meta)
        z.writestr("pkg-1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\n")
elif t == "sdist":
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("pkg-1.0/PKG-INFO"); info.size = len(meta)
        tf.addfile(info, io.BytesIO(meta))
    (d / "s.tar.gz").write_bytes(buf.getvalue())
    with zipfile.ZipFile(d / "s.zip", "w") as z:
        z.writestr("pkg-1.0/PKG-INFO", meta)
else:
    fx = pathlib.Path("tests/fixtures/osv/policy")
    with zipfile.ZipFile(d / "all.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(fx.glob("*.json")):
            z.write(p, p.name)
PY
            ;;
        osv)
            cp "$fx"/osv/policy/*.json "$d/" 2>/dev/null || true
            { find "$data/pypa-advisory-database" -name '*.yaml' 2>/dev/null || true; } | head -300 \
                | while read -r f; do cp "$f" "$d/"; done || true
            cp "$data"/malicious-packages-sample/*.json "$d/" 2>/dev/null || true ;;
        snapshot)
            "$root/target/debug/airlock" advisories build "$fx/osv/policy" -o "$d/seed.sqlite.zst" >/dev/null 2>&1 \
                || printf 'x' > "$d/empty" ;;
        bundle) printf 'x' > "$d/empty" ;;
        pylock) printf 'lock-version = "1.0"\ncreated-by = "uv"\n[[packages]]\nname = "p"\nversion = "1.0"\nmarker = "sys_platform == '"'"'linux'"'"'"\n[[packages.wheels]]\nname = "p-1.0-py3-none-any.whl"\nurl = "https://x/p-1.0-py3-none-any.whl"\nhashes = {sha256 = "00"}\n' > "$d/pylock" ;;
        plan) printf '{"schema":"airlock.plan/v1","upstream":"https://x/simple/","bytes":3,"files":[{"project":"p","filename":"p-1.0-py3-none-any.whl","url":"https://x/p-1.0-py3-none-any.whl","sha256":"%064d","size":3}]}' 0 > "$d/plan" ;;
        readme) printf 'Metadata-Version: 2.1\nName: p\nDescription-Content-Type: text/markdown\n\n# T\n\n<script>x</script>\n' > "$d/readme" ;;
        provenance) cp "$data/pep740/attestations/sampleproject-4.0.0.tar.gz.provenance" "$d/" 2>/dev/null || printf '{"version":1,"attestation_bundles":[]}' > "$d/empty" ;;
        xmlrpc) printf '<?xml version="1.0"?><methodResponse><params><param><value><array><data><value><array><data><value><string>p</string></value><value><string>1.0</string></value><value><int>1700000000</int></value><value><string>new release</string></value><value><int>42</int></value></data></array></value></data></array></value></param></params></methodResponse>' > "$d/changes"
            printf '<?xml version="1.0"?><methodResponse><fault><value><struct><member><name>faultCode</name><value><int>1</int></value></member></struct></value></fault></methodResponse>' > "$d/fault" ;;
        uv-lock) printf 'version = 1\nrequires-python = ">=3.11"\n[[package]]\nname = "demo"\nversion = "0.1.0"\nsource = { editable = "." }\ndependencies = [{ name = "p", marker = "sys_platform == '"'"'win32'"'"'" }]\n[[package]]\nname = "p"\nversion = "1.0"\nsource = { registry = "https://x/simple" }\nwheels = [{ url = "https://x/p-1.0-py3-none-any.whl", hash = "sha256:00", size = 3 }]\n' > "$d/uvlock" ;;
    esac
    # Saved crashes are seeds too: they must stay fixed.
    cp "$fx/fuzz/$t/"* "$d/" 2>/dev/null || true
}

status=0
printf '%-13s %10s %9s %8s %7s\n' target runs exec/s coverage crashes
for t in "${targets[@]}"; do
    corpus=fuzz/corpus/$t
    artifacts=fuzz/artifacts/$t
    mkdir -p "$corpus" "$artifacts"
    # A seed that cannot be made only weakens the start, never stops the run.
    [ -n "$(ls -A "$corpus")" ] || seeds "$t" "$corpus" || true
    log=$(mktemp)
    AIRLOCK_FUZZ_TARGET=$t "$bin" "$corpus" -max_total_time="$per" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" > "$log" 2>&1 || true
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    crashes=$(find "$artifacts" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) | wc -l)
    printf '%-13s %10s %9s %8s %7s\n' "$t" "${runs:-?}" "${rate:-?}" "${cov:-?}" "$crashes"
    if [ "$crashes" -gt 0 ]; then
        status=1
        grep -m1 -A3 "panicked\|ERROR: libFuzzer" "$log" >&2 || true
    fi
    rm -f "$log"
done
exit $status
