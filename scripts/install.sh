#!/usr/bin/env bash
# Install everything avatarbot needs on a fresh Debian/Ubuntu machine (run as root or with sudo).
#   scripts/install.sh          base + dev + gpu extras (torch: CPU wheel first, so pip pulls no CUDA)
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# ffmpeg: encoding/decoding; redis-server: the queue (embedded in single-machine mode);
# espeak-ng: offline text-to-speech.
$SUDO apt-get install -y -qq --no-install-recommends ffmpeg redis-server espeak-ng >/dev/null
python3 -m pip install -q --upgrade pip
# torch first: where a local CPU wheel of 2.13.0 exists pip takes it instead of several GB of CUDA
# packages; elsewhere pip picks the platform's default build.
python3 -m pip install -q "torch==2.13.0" || python3 -m pip install -q torch
python3 -m pip install -q -e ".[dev,gpu]"
echo "installed: $(python3 -m avatarbot --version)"
