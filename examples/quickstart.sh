#!/usr/bin/env bash
# The README's main job: set up, train the default network on Fashion-MNIST, export it to ONNX, predict with it.
# Run as root on a fresh Debian/Ubuntu machine with Python 3.11, from the repository root: bash examples/quickstart.sh
# tests/test_readme.py runs the specc lines below, with the training cut to a fraction of an epoch.
set -euo pipefail
cd "$(dirname "$0")/.."

apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist graphviz
python3.11 -m venv .venv && .venv/bin/pip install -q -e .
.venv/bin/specc train specs/fashion.cnn --out runs/fashion
.venv/bin/specc export specs/fashion.cnn --weights runs/fashion/best.safetensors -o fashion.onnx
.venv/bin/specc predict fashion.onnx examples/images/*.png
