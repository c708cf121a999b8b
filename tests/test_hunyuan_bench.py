"""bench/hunyuan_gpu.py stays ready for the one GPU run it gets: its --smoke mode runs every case
on the CPU with tiny configs, and every case must either measure or fail for a GPU-only reason."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytestmark = pytest.mark.gpu  # needs the gpu extra; runs on the CPU

ROOT = Path(__file__).resolve().parents[1]
GPU_ONLY = ("fp8 compute needs", "No viable backend for scaled_dot_product_attention")


def test_bench_runs_every_case_on_the_cpu(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "bench/hunyuan_gpu.py", "--smoke", "--quick", "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "hunyuan_gpu.jsonl").read_text().splitlines()]
    cases = {r.get("case"): r for r in records}
    unexpected = [r for r in records if "error" in r and not any(reason in r["error"] for reason in GPU_ONLY)]
    assert not unexpected, unexpected
    for name in ("bf16 sdpa separate standard", "bf16 sdpa batched standard", "fp8 storage sdpa separate standard"):
        assert cases[name]["full_s"] > 0 and cases[name]["finite"], cases[name]
    assert cases["fp8 storage sdpa separate standard"]["rel_err_vs_bf16"] < 1e-2
    pipeline = cases["full pipeline"]
    assert set(pipeline["stages"]) == {"text encoders", "whisper", "VAE encode", "VAE decode"}
    assert pipeline["frames"] == 17 and pipeline["frames_finite"]
    assert cases["24 GB recipe separate standard"]["full_s"] > 0
    assert set(cases["helper FLOPs (meta device)"]["flops"]) == set(pipeline["stages"])
    assert "| bf16 | sdpa | separate |" in (tmp_path / "hunyuan_gpu.md").read_text()
