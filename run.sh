#!/usr/bin/env bash
# The main job on a fresh machine: install into .venv, then verify the example kernel and print the verdict.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/kernelsearch ]; then
    python3 -m venv .venv
    .venv/bin/python -m pip install -q torch==2.13.0
    .venv/bin/python -m pip install -q -e .
fi
exec .venv/bin/kernelsearch verify examples/verify/softmax_problem.py examples/verify/softmax_triton.py "$@"
