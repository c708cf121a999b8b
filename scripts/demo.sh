#!/usr/bin/env bash
# Set up what is missing (scripts/setup.sh), then render the demo clip on the CPU:
# the photo in examples/ says a line of text, written to hello.mp4 (or the path given).
#
#   scripts/demo.sh [OUTPUT.mp4]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
out="${1:-hello.mp4}"
venv="${AVATARBOT_VENV:-.venv}"
"$venv/bin/avatarbot" animate --photo examples/astronaut.jpg --text "Hello! I am a photo, and now I can talk." -o "$out"
