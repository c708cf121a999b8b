"""HunyuanVideo-Avatar transformer on a GPU: seconds per denoising step and peak memory.

The full-size architecture (20 double + 40 single blocks, hidden 3072, 10 audio adapters) with
random weights, one 33-latent-frame window per step, both guidance branches, for each quality
preset, in bf16 and fp8 weight storage, with and without block offload. Beside each measurement
the FLOP-limit time: the step's matmul + attention FLOPs at the GPU's dense bf16 peak (fp8 here is
weight *storage*; the math still runs in bf16, so the limit is the same).

    python bench/hunyuan_gpu.py --estimate-only          # no GPU needed: the FLOP table
    python bench/hunyuan_gpu.py                           # everything, on a CUDA GPU
    python bench/hunyuan_gpu.py --quality high --dtype fp8 --offload block --record

Text encoders, whisper and the VAE are not part of the timing (they run once per clip).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/ comes first on sys.path and bench/queue.py would hide the standard
# library's `queue` (imported by torch, redis-py, multiprocessing). Use the repo root instead.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from avatarbot.avatar.hunyuan import schedule

RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "## HunyuanVideo-Avatar"

# A typical phone portrait (4:5) photo; its render size per preset comes from the size buckets.
PHOTO_SIZE = (1080, 1350)
PRESETS = {"fast": 384, "standard": 512, "high": 704}
TEXT_TOKENS = 640  # ~64 prompt tokens after the template + LLaVA's 576 image tokens
HIDDEN, HEADS, DOUBLE, SINGLE, MLP_RATIO = 3072, 24, 20, 40, 4
ADAPTERS, ADAPTER_DIM = 10, 1024
# Dense (no sparsity) bf16 tensor-core peaks, FLOP/s.
PEAK_BF16 = {"H100": 989e12, "H200": 989e12}


def window_tokens(width: int, height: int) -> tuple[int, int]:
    """(video + reference tokens, text tokens) of one 33-frame window."""
    per_frame = (height // schedule.VAE_SPACE_STRIDE // schedule.PATCH_SIZE) * (
        width // schedule.VAE_SPACE_STRIDE // schedule.PATCH_SIZE
    )
    return (schedule.LATENT_WINDOW + 1) * per_frame, TEXT_TOKENS


def forward_flops(width: int, height: int) -> float:
    """One transformer forward on one window: 2 FLOPs per multiply-add.

    Per block and token: 12 h^2 multiply-adds of linears (q,k,v,out = 4h^2, MLP 8h^2; the
    single-stream block's fused linears add up to the same); attention 2 N^2 h (QK^T and AV).
    Audio adapters: q and out projections (2 x h x 1024) per video token."""
    video, text = window_tokens(width, height)
    n = video + text
    blocks = DOUBLE + SINGLE
    linears = blocks * 12 * HIDDEN**2 * n
    attention = blocks * 2 * n * n * HIDDEN
    adapters = ADAPTERS * 2 * HIDDEN * ADAPTER_DIM * video
    return 2 * (linears + attention + adapters)


def step_flops(width: int, height: int, cached: bool = False) -> float:
    """A denoising step on one window: two forwards (guidance); a cached step runs 1 of 60 blocks."""
    full = 2 * forward_flops(width, height)
    return full / (DOUBLE + SINGLE) if cached else full


def clip_flops(width: int, height: int, seconds: float, steps: int = 50) -> float:
    frames = max(1, round(seconds * 25))
    total = schedule.denoise_length(frames)
    windows = -(-total // schedule.LATENT_WINDOW)
    full = len(schedule.full_steps(steps))
    return windows * (full * step_flops(width, height) + (steps - full) * step_flops(width, height, cached=True))


def estimate_table(gpu: str = "H100") -> list[str]:
    peak = PEAK_BF16[gpu]
    lines = [
        f"FLOP-limit estimates ({gpu}, dense bf16 peak {peak / 1e12:.0f} TFLOP/s; {TEXT_TOKENS} text tokens):",
        "",
        "| preset | size (w x h) | tokens/window | PFLOP/forward | FLOP-limit s/step (full, 2 fwd) | s/step cached | 16 s clip, 50 steps | 60 s clip, 50 steps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, short in PRESETS.items():
        w, h = schedule.render_size(*PHOTO_SIZE, short)
        video, text = window_tokens(w, h)
        lines.append(
            f"| {name} | {w} x {h} | {video + text:,} | {forward_flops(w, h) / 1e15:.2f} | "
            f"{step_flops(w, h) / peak:.1f} | {step_flops(w, h, True) / peak:.2f} | "
            f"{clip_flops(w, h, 16) / peak / 60:.1f} min | {clip_flops(w, h, 60) / peak / 60:.1f} min |"
        )
    return lines


# --- measurement (GPU) ----------------------------------------------------------------------------
def build_model(dtype: str, offload: str):
    import torch

    from avatarbot.avatar.hunyuan import fp8
    from avatarbot.avatar.hunyuan.model import HunyuanAvatarTransformer3DModel

    build_on = "cpu" if offload == "block" else "cuda"
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(build_on):
            model = HunyuanAvatarTransformer3DModel().eval()
    finally:
        torch.set_default_dtype(torch.float32)
    for adapter in model.audio_adapters:  # non-zero so the adapters do real work
        torch.nn.init.normal_(adapter.to_out.weight, std=0.02)
    if dtype == "fp8":
        fp8.quantize_model_(model)
    if offload == "block":
        model.enable_group_offload(
            onload_device=torch.device("cuda"), offload_type="block_level", num_blocks_per_group=1, use_stream=False
        )
    return model


def measure(model, width: int, height: int, steps: int) -> dict:
    import torch

    from avatarbot.avatar.hunyuan.model import BlockCache  # noqa: F401  (documents the cache path)

    dev = torch.device("cuda")
    lat_h, lat_w = height // 8, width // 8
    t = schedule.LATENT_WINDOW
    bf = torch.bfloat16
    inputs = dict(
        hidden_states=torch.randn(1, 16, t, lat_h, lat_w, device=dev, dtype=bf),
        timestep=torch.tensor([900.0], device=dev),
        ref_latents=torch.randn(1, 16, t, lat_h, lat_w, device=dev, dtype=bf),
        encoder_hidden_states=torch.randn(1, TEXT_TOKENS, 4096, device=dev, dtype=bf),
        pooled_projections=torch.randn(1, 768, device=dev, dtype=bf),
        audio_embeds=torch.randn(1, 4 * t - 3, 10, 5, 384, device=dev, dtype=bf),
        face_mask=torch.ones(1, 1, 1, lat_h, lat_w, device=dev, dtype=bf),
        motion_exp=torch.full((1, 4), 30.0, device=dev),
        motion_pose=torch.full((1, 4), 25.0, device=dev),
        fps=torch.full((1,), 25.0, device=dev),
    )

    def full_step():
        out = None
        for _ in range(2):  # conditional + unconditional branch
            out = model(**inputs, return_block_cache=True)
        return out

    with torch.no_grad():
        cache = full_step().block_cache  # warm-up
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for _ in range(steps):
            full_step()
        torch.cuda.synchronize()
        full_s = (time.perf_counter() - start) / steps
        start = time.perf_counter()
        for _ in range(steps):
            for _ in range(2):
                model(**inputs, block_cache=cache)
        torch.cuda.synchronize()
        cached_s = (time.perf_counter() - start) / steps
    return {"full_s": full_s, "cached_s": cached_s, "peak_gib": torch.cuda.max_memory_allocated() / 1024**3}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--estimate-only", action="store_true")
    parser.add_argument("--quality", choices=list(PRESETS), action="append")
    parser.add_argument("--dtype", choices=["bf16", "fp8"], action="append")
    parser.add_argument("--offload", choices=["none", "block"], action="append")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per case (after one warm-up)")
    parser.add_argument("--record", action="store_true", help=f"append the results to {RESULTS.name}")
    args = parser.parse_args()

    if args.estimate_only:
        print("\n".join(estimate_table()))
        return 0
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU visible; use --estimate-only", file=sys.stderr)
        return 1
    name = torch.cuda.get_device_name()
    gpu = "H200" if "H200" in name else "H100"
    peak = PEAK_BF16[gpu]
    rows = [
        (
            f"Measured on {name}, torch {torch.__version__}, {args.steps} timed steps after one warm-up; "
            "random weights; transformer only; one 33-frame window, both guidance branches:"
        ),
        "",
        "| preset | size | weights | offload | s/step full (FLOP limit) | s/step cached | peak GiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for dtype in args.dtype or ["bf16", "fp8"]:
        for offload in args.offload or ["none", "block"]:
            model = build_model(dtype, offload)
            for quality in args.quality or list(PRESETS):
                w, h = schedule.render_size(*PHOTO_SIZE, PRESETS[quality])
                try:
                    m = measure(model, w, h, args.steps)
                    row = (
                        f"| {quality} | {w} x {h} | {dtype} | {offload} | {m['full_s']:.2f} ({step_flops(w, h) / peak:.2f}) | "
                        f"{m['cached_s']:.3f} | {m['peak_gib']:.1f} |"
                    )
                except torch.cuda.OutOfMemoryError:
                    row = f"| {quality} | {w} x {h} | {dtype} | {offload} | out of memory | | |"
                    torch.cuda.empty_cache()
                print(row, flush=True)
                rows.append(row)
            del model
            torch.cuda.empty_cache()
    if args.record:
        with RESULTS.open("a") as f:
            f.write("\n" + "\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
