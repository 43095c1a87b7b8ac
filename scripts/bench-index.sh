#!/usr/bin/env bash
# `airlock index` against dumb-pypi and dir2pi on the 71,408 real PyPI
# filenames of ../shared/data/pypi-filenames (issue 15), and airlock's peak
# on 4,000 of them: the `index` section of scripts/bench-peers.sh, which
# installs the peers into scripts/.peers and skips them without network.
#
# usage: scripts/bench-index.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-${RUNS:-5}} exec scripts/bench-peers.sh index
