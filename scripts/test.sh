#!/usr/bin/env bash
# Run the test suite (as root: integration tests start a private containerd,
# a local registry, runc containers and CNI networks, and clean up after).
# Creates .venv with the dev extras on first use. Extra arguments go to pytest.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
bash scripts/install-deps.sh --dev
if [[ ! -x .venv/bin/pytest ]]; then
  python3 -m venv .venv
  .venv/bin/pip install -q -e '.[dev]'
fi
exec .venv/bin/pytest -q -p no:cacheprovider "$@"
