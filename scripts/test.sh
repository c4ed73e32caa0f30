#!/usr/bin/env bash
# Sets up .venv (first time only), then lints and runs the whole test suite (two pytest processes side by side on a
# machine with two cores or more: scripts/run_tests.py); extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/system_packages.sh
.venv/bin/ruff check eval_pipeline tests bench scripts
exec .venv/bin/python scripts/run_tests.py -q "$@"
