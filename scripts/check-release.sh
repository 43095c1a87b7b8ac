#!/usr/bin/env bash
# Build the release binary and check it is a distributable one: at most
# 40 MiB, and a panic still names its file and line.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
bin=${CARGO_TARGET_DIR:-target}/release/airlock
size=$(stat -c %s "$bin")
echo "release binary: $bin, $((size / 1048576)) MiB"
[ "$size" -le $((40 * 1048576)) ] || { echo "larger than 40 MiB" >&2; exit 1; }
# Panic locations are data compiled in, not debug info: they survive strip.
n=$(strings "$bin" | grep -c "src/manifest/mod.rs" || true)
[ "$n" -gt 0 ] || { echo "no source locations left for panic messages" >&2; exit 1; }
echo "panic locations kept (src/manifest/mod.rs is named in the binary)"
