#!/usr/bin/env bash
# Exit 0 when PyPI answers, else print why to stderr and exit 1. Scripts that
# need the real PyPI call it first and exit 0 themselves when it fails: they
# are not part of the hermetic test suite.
# usage: scripts/pypi-reachable.sh [INDEX_URL] [WHAT IS SKIPPED]
python3 - "${1:-https://pypi.org/simple/}" "${2:-this check}" <<'PY'
import sys, urllib.request
try:
    urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "pip/", method="HEAD"), timeout=10)
except Exception as e:
    print(f"PyPI is unreachable ({e}): skipping {sys.argv[2]}", file=sys.stderr)
    sys.exit(1)
PY
