#!/usr/bin/env bash
# Sets up .venv (first time only) and runs the quickstart suite on the embedded model; extra args go to `run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/eval-pipeline run evals/quickstart.yaml "$@"
