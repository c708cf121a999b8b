#!/usr/bin/env bash
# Set up what is missing to run avatarbot from this checkout, and nothing that is already there.
#
#   scripts/setup.sh          system programs + .venv with avatarbot (enough for the demo and the bots)
#   scripts/setup.sh --dev    the same, plus what the tests need (the dev and gpu extras, Chromium)
#
# Everything Python goes into a project virtual environment, .venv, made from the machine's own
# python3 (3.11 or newer; PYTHON=/path/to/python3 picks another): the system interpreter is never
# touched, which is also what Debian 12, Ubuntu 24.04 and Debian 13 insist on (PEP 668).
# System programs come from apt. As root they are installed; otherwise, when one is missing, the
# script prints the one apt command that installs them and stops, so no root is needed when they
# are there. Run it as often as you like: a second run with nothing changed takes a second.
# scripts/demo.sh and scripts/test.sh call it first.
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
for arg in "$@"; do
    case "$arg" in
        --dev) dev=1 ;;
        -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "setup: unknown option $arg (try --help)" >&2; exit 2 ;;
    esac
done

PYTHON="${PYTHON:-python3}"
VENV="${AVATARBOT_VENV:-.venv}"

# --- system programs (apt) ------------------------------------------------------------------------
# program -> Debian/Ubuntu package. ffmpeg encodes and decodes; espeak-ng is the offline voice;
# redis-server is the queue's embedded Redis. The tests also drive a real headless Chromium and
# check the systemd units in deploy/ with systemd-analyze.
programs=(ffmpeg:ffmpeg espeak-ng:espeak-ng redis-server:redis-server)
if [ "$dev" = 1 ]; then
    programs+=(chromium:chromium chromedriver:chromium-driver systemd-analyze:systemd)
fi
missing=()
command -v "$PYTHON" >/dev/null 2>&1 || missing+=(python3 python3-venv)
for entry in "${programs[@]}"; do
    command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry#*:}")
done
# Debian splits venv's pip bootstrap into python3-venv: without it `python3 -m venv` fails.
if [ ! -x "$VENV/bin/python" ] && command -v "$PYTHON" >/dev/null 2>&1 && ! "$PYTHON" -c "import ensurepip" 2>/dev/null; then
    missing+=("python3-venv")
fi

if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "setup: installing ${missing[*]} (apt)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "setup: missing ${missing[*]}; install with: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi

version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if ! "$PYTHON" -c 'import sys; raise SystemExit(sys.version_info < (3, 11))'; then
    echo "setup: avatarbot needs Python 3.11 or newer; $PYTHON is $version (PYTHON=/path/to/python3.11 picks another)" >&2
    exit 1
fi

# --- the project venv ----------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV from $(command -v "$PYTHON") (Python $version)"
    "$PYTHON" -m venv "$VENV"
fi

extras=""
[ "$dev" = 1 ] && extras="dev,gpu"
# What is installed is recorded next to the venv; a changed pyproject.toml or a wider set of
# extras installs again, anything else is already done.
stamp="$VENV/.avatarbot-installed"
want="$(sha256sum pyproject.toml | cut -c1-16) ${extras:-base}"
have="$(cat "$stamp" 2>/dev/null || true)"
if [ "$have" = "$want" ] || { [ -z "$extras" ] && [ "${have%% *}" = "${want%% *}" ]; }; then
    exit 0
fi

pip=("$VENV/bin/python" -m pip install --quiet)
if [ -n "$extras" ]; then
    # torch first: where a local CPU wheel of 2.13.0 exists pip takes it, instead of letting the
    # gpu extra pull several GB of CUDA packages; elsewhere pip picks the platform's default build.
    "${pip[@]}" "torch==2.13.0" || "${pip[@]}" torch
    "${pip[@]}" -e ".[$extras]"
else
    "${pip[@]}" -e .
fi
echo "$want" >"$stamp"
echo "setup: $("$VENV/bin/avatarbot" --version) installed in $VENV"
