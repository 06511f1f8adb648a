#!/usr/bin/env bash
# Set up mpnn in ./.venv on a fresh machine; safe to run again (it skips what is done).
#   scripts/setup.sh          the package and what it needs to run
#   scripts/setup.sh --test   also the test dependencies (pytest, torch_geometric, ruff, tensorboard)
# PyTorch: an installed torch is kept.  Otherwise a machine with an NVIDIA GPU gets the newest
# torch (CUDA build, unpinned); a machine without one gets a CPU-only build, so that several GB
# of CUDA libraries are not downloaded for nothing.  TORCH_SPEC overrides the choice
# (e.g. TORCH_SPEC="torch==2.5.1").
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"

if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
pip() { .venv/bin/python -m pip "$@"; }

if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if [ -n "${TORCH_SPEC:-}" ]; then
    pip install "$TORCH_SPEC"
  elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "setup: NVIDIA GPU found: installing the newest torch (CUDA build)"
    pip install torch
  else
    echo "setup: no GPU: installing a CPU-only torch build"
    pip install --only-binary=:all: "torch==2.13.0+cpu" 2>/dev/null \
      || pip install --only-binary=:all: torch --index-url https://download.pytorch.org/whl/cpu \
      || pip install torch
  fi
fi
pip install -q -e ".${extras}"
echo "setup: done ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
