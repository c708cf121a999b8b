#!/bin/sh
# bench/hunyuan_gpu.py on a lent GPU machine, in one command.
#
# That machine's image has CUDA PyTorch, transformers and accelerate but not the rest of what the
# bench imports, and nothing can be fetched there. So, first, on a machine with PyPI:
#
#     sh bench/hunyuan_gpu_device.sh --fetch      # the missing wheels into .whl/ (git-ignored, ~15 MB)
#
# then on the GPU machine (the device tool: carry ".whl", timeout_s 600), from the repo root:
#
#     sh bench/hunyuan_gpu_device.sh              # writes $OUT/hunyuan_gpu.{md,jsonl} (or bench/out/)
#
# BUDGET (seconds, default 480) bounds the bench; QUICK=1 runs its short list.
set -eu
PYTHON=${PYTHON:-python3}
if [ "${1:-}" = "--fetch" ]; then
    # Versions as tested here, except torchao: 0.17's C++ extensions load on torch >= 2.11 (the image's).
    rm -rf .whl && mkdir .whl
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl \
        diffusers==0.42.1 torchao==0.17.0 importlib_metadata==10.2.0 pydantic==2.14.4 pydantic_core==2.50.5 \
        pydantic-settings==2.16.3 python-dotenv==1.2.4 annotated-types==0.8.0 typing-inspection==0.4.5 \
        platformdirs==4.14.9
    ls .whl
    exit 0
fi
if [ -d .whl ]; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
set -- --out "$OUT" --budget "${BUDGET:-480}"
[ "${QUICK:-0}" = 1 ] && set -- "$@" --quick
# The budget skips cases that would not fit; this timeout is the last resort (results are appended
# as each case ends, so a cut run keeps what it measured).
timeout $(( ${BUDGET:-480} + 90 )) "$PYTHON" bench/hunyuan_gpu.py "$@" 2>&1 | tee "$OUT/hunyuan_gpu.log" | grep -v "^W[0-9]" || true
ls -la "$OUT"
