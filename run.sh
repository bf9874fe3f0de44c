#!/usr/bin/env bash
# The main job on a fresh machine: install into .venv, then turn the relative-position attention example into a
# fused Triton kernel and verify it (on the CPU through Triton's interpreter when there is no GPU).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/kernelsearch ]; then
    python3 -m venv .venv
    .venv/bin/python -m pip install -q torch==2.13.0
    .venv/bin/python -m pip install -q -e .
fi
exec .venv/bin/kernelsearch attention examples/attention/relative_position.py --out runs/attention "$@"
