#!/usr/bin/env bash
# Creates .venv-lmeval: lm-eval 0.4.13 in its own venv that also sees .venv's packages (a .pth file pointing at
# .venv's site-packages), so CPU torch and transformers are not installed twice and lm-eval never enters .venv.
# Used by the lm-eval comparison test (tests/test_lm_eval_parity.py). Idempotent and quick when done.
set -euo pipefail
cd "$(dirname "$0")/.."
LMEVAL_VERSION=0.4.13
VENV=.venv-lmeval
stamp="$VENV/.lmeval-$(cat scripts/lm_eval_env.sh | sha256sum | cut -c1-16)"
[ -f "$stamp" ] && exit 0
[ -x .venv/bin/python ] || { echo "run scripts/bootstrap.sh first (.venv is missing)" >&2; exit 1; }
UV=.venv/bin/uv
[ -x "$UV" ] || UV=uv
[ -x "$VENV/bin/python" ] || "$UV" venv -q --python .venv/bin/python "$VENV"
base=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
own=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$(cd "$base" && pwd)" > "$own/_eval_pipeline_base_venv.pth"
# lm-eval's core requirements, at .venv's versions where .venv has them; then the copies of what .venv already has
# are removed, so torch, transformers, numpy ... load from .venv and only lm-eval's own extras live here.
"$UV" pip freeze -q --python .venv/bin/python | grep -v -e '^-e' -e ' @ ' > "$VENV/constraints.txt"
"$UV" pip install -q --python "$VENV/bin/python" --compile-bytecode -c "$VENV/constraints.txt" "lm-eval==$LMEVAL_VERSION"
dups=$(comm -12 <("$UV" pip freeze -q --python "$VENV/bin/python" | cut -d= -f1 | sort) \
                <(cut -d= -f1 "$VENV/constraints.txt" | sort))
[ -z "$dups" ] || "$UV" pip uninstall -q --python "$VENV/bin/python" $dups
"$VENV/bin/python" -c "import lm_eval, torch, transformers, accelerate" >/dev/null
rm -f "$VENV"/.lmeval-* && touch "$stamp"
