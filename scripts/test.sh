#!/usr/bin/env bash
# Sets up .venv (first time only), then lints and runs the whole test suite; extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/system_packages.sh
.venv/bin/ruff check eval_pipeline tests bench
exec .venv/bin/pytest -q "$@"
