#!/usr/bin/env bash
# Installs everything selfsup needs on a fresh Debian machine (as root, registries only):
# the Fashion-MNIST Debian package, Debian's chromium (the headless browser tests/runs/report/test_html.py
# opens the HTML report in; never a downloaded browser), the CPU build of torch 2.13.0 FIRST (a bare `torch`
# would pull several GB of CUDA wheels), then this package with its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || ! command -v chromium >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist chromium >/dev/null
fi
python3 -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null \
  || python3 -m pip install -q torch==2.13.0
python3 -m pip install -q -e ".[test]"
