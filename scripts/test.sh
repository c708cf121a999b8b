#!/usr/bin/env bash
# Set up what is missing for the tests (scripts/setup.sh --dev), then run them. Arguments go to
# pytest, e.g. `scripts/test.sh tests/test_settings.py -k toml` or `scripts/test.sh -m "not drill"`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
# No test may download weights or data: a hub lookup offline would also retry for ~23 s.
export HF_HUB_OFFLINE=1
exec "${AVATARBOT_VENV:-.venv}/bin/python" -m pytest "$@"
