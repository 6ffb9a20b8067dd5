#!/usr/bin/env bash
# `npm run test:integration`: the PyTorch integration's real checks, with Debian's python3-torch
# (torch 1.13 for /usr/bin/python3; the pyenv python3 on PATH has no torch, so call it by path).
#   1. the Python client's plans equal the CLI's, byte for byte apart from timings;
#   2. the exchange helpers deliver every row in plan order, and gradients along the inverse
#      exchange, on layouts with empty ranks and zero-length segments;
#   3. a tiny multimodal model trained 4 steps on 4 gloo ranks, with and without post-balancing:
#      losses and gradients match, the per-rank compute spread shrinks.
# Exit 0 only when all pass. POSTBALANCE_SKIP_BUILD=1 skips the TypeScript build (npm test has
# just done it).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${POSTBALANCE_PYTHON:-/usr/bin/python3}
export PYTHONDONTWRITEBYTECODE=1  # keep the checkout clean

if ! "$PY" -c 'import torch, torch.distributed as d; assert d.is_available()' 2>/dev/null; then
  echo "run_check: $PY cannot import torch (install it: apt-get install -y python3-torch)" >&2
  exit 2
fi
if [ "${POSTBALANCE_SKIP_BUILD:-}" != 1 ]; then
  npm run build >/dev/null
fi

echo "== Python client vs CLI"
"$PY" integrations/pytorch/check_client.py
echo "== exchange helpers on awkward layouts (3 gloo ranks)"
"$PY" integrations/pytorch/check_exchange.py
echo "== 4-rank training check (gloo, CPU)"
"$PY" integrations/pytorch/check_training.py "$@"
