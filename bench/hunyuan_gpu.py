"""HunyuanVideo-Avatar on a GPU: every speed mode and a full-size end-to-end render, one command.

    python bench/hunyuan_gpu.py --estimate-only             # no GPU: FLOP-limit tables (meta device)
    python bench/hunyuan_gpu.py --out /tmp/bench            # everything, on one CUDA GPU (~9 min on an H200)
    python bench/hunyuan_gpu.py --out /tmp/bench --quick    # the core matrix and the pipeline, ~4 min
    python bench/hunyuan_gpu.py --smoke --out /tmp/smoke    # the same code on the CPU, tiny configs

Every model is built from its full-size config with random weights (nothing is downloaded):
the 13B transformer, LLaVA-LLaMA-3-8B + CLIP-L text encoders, whisper-tiny, the causal VAE.
Measured, each with its FLOP-limit time beside it (dense peak of the GPU; fp8 linears at the fp8
peak):

1. s/step (one 33-latent window, both guidance branches; a cached step runs the last block) and
   peak memory per quality preset x {bf16, fp8 storage, fp8 compute} x {branches separate,
   batched} x attention kernel, plus the relative error of fp8 storage / fp8 compute against
   bf16 on the same forward;
2. a full render at 704 x 768 for 129 frames: wall time per stage (text encoders + whisper, VAE
   encode of the reference, denoise, VAE decode) and peak memory;
3. the 24 GB recipe: fp8 storage + block offload at the 512 preset;
4. torch.compile of the blocks: cold start and steady state.

Robust by design, because GPU time is scarce: every measurement runs in its own try/except and
is appended (JSON lines + a markdown line) to --out as soon as it is done; failures are recorded
and the run goes on; a --budget in seconds skips what would not finish (highest value first).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/ comes first on sys.path and bench/queue.py would hide the standard
# library's `queue` (imported by torch, redis-py, multiprocessing). Use the repo root instead.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import copy
import gc
import json
import os
import platform
import tempfile
import time
import traceback
from contextlib import contextmanager

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from avatarbot.avatar.engine import QUALITY_SHORT_SIDE
from avatarbot.avatar.hunyuan import schedule

RESULTS = Path(__file__).with_name("RESULTS.md")

# A typical phone portrait (4:5) photo; its render size per preset comes from the size buckets.
PHOTO_SIZE = (1080, 1350)
PRESETS = QUALITY_SHORT_SIDE  # quality -> short side, the one quality table
PIPELINE_SIZE = (704, 768)  # the full render: width x height, 129 frames (one window)
PIPELINE_FRAMES = 129
# Text rows the joint blocks see under upstream's rule (prompt tokens + 576 image features): a
# typical prompt and the negative prompt (LLaMA-3 tokens, estimated); the refiner sees all 831.
TEXT_ROWS, NEG_TEXT_ROWS, ENCODER_ROWS = 640, 610, 831
# Dense (no sparsity) tensor-core peaks in FLOP/s: (bf16, fp8).
PEAKS = {"H100": (989e12, 1979e12), "H200": (989e12, 1979e12), "CPU": (1e12, 1e12)}

# Full-size configs (the released model's; see avatarbot/avatar/hunyuan/model.py for the transformer).
LLAMA3_8B = dict(
    vocab_size=128320, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
    num_key_value_heads=8, rope_theta=500000.0, max_position_embeddings=8192, rms_norm_eps=1e-5,
)  # fmt: skip
CLIP_VIT_L_336 = dict(
    hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, image_size=336,
    patch_size=14, projection_dim=768,
)  # fmt: skip
CLIP_L_TEXT = dict(
    vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
    projection_dim=768, max_position_embeddings=77,
)  # fmt: skip
WHISPER_TINY = dict(
    d_model=384, encoder_layers=4, decoder_layers=4, encoder_attention_heads=6, decoder_attention_heads=6,
    encoder_ffn_dim=1536, decoder_ffn_dim=1536, num_mel_bins=80, max_source_positions=1500, vocab_size=51865,
)  # fmt: skip
# --smoke: the same code at toy sizes (the tests' tiny configs).
TINY = dict(
    transformer=None,  # model.TINY_CONFIG
    llama=dict(
        vocab_size=512, hidden_size=16, intermediate_size=32, num_hidden_layers=4, num_attention_heads=2,
        num_key_value_heads=2,
    ),
    vision=dict(
        hidden_size=8, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2, image_size=336,
        patch_size=14, projection_dim=8,
    ),
    clip=dict(
        vocab_size=512, hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
        projection_dim=8, max_position_embeddings=77,
    ),
    whisper=dict(
        d_model=8, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=16, decoder_ffn_dim=16, num_mel_bins=80, max_source_positions=1500, vocab_size=8,
    ),
    vae=dict(latent_channels=4, block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=4),
)  # fmt: skip


# --- FLOPs ----------------------------------------------------------------------------------------
def window_tokens(width: int, height: int) -> int:
    """Video + reference tokens of one 33-latent window."""
    per_frame = (height // schedule.VAE_SPACE_STRIDE // schedule.PATCH_SIZE) * (
        width // schedule.VAE_SPACE_STRIDE // schedule.PATCH_SIZE
    )
    return (schedule.LATENT_WINDOW + 1) * per_frame


HIDDEN, BLOCKS, ADAPTERS, ADAPTER_DIM = 3072, 60, 10, 1024


def forward_flops(width: int, height: int, text_rows: int = TEXT_ROWS) -> tuple[float, float]:
    """(linear, attention) FLOPs of one transformer forward on one window, 2 per multiply-add.

    Per block and token 12 h^2 multiply-adds of linears (q, k, v, out 4 h^2 + MLP 8 h^2; the
    single-stream block's fused linears add up to the same); attention 2 N^2 h (QK^T and AV).
    Audio adapters: q and out projections (2 h x 1024) per token. The refiner and embedders are
    under 0.1 %."""
    video = window_tokens(width, height)
    n = video + text_rows
    linears = BLOCKS * 12 * HIDDEN**2 * n + ADAPTERS * 2 * HIDDEN * ADAPTER_DIM * video
    attention = BLOCKS * 2 * n * n * HIDDEN
    return 2.0 * linears, 2.0 * attention


def limit_s(flops: tuple[float, float], gpu: str, fp8_linears: bool = False) -> float:
    bf16, fp8 = PEAKS[gpu]
    return flops[0] / (fp8 if fp8_linears else bf16) + flops[1] / bf16


def step_limit_s(width: int, height: int, gpu: str, fp8_linears: bool = False, cached: bool = False) -> float:
    """A denoising step on one window: two forwards (the guidance branches); cached: 1 of 60 blocks."""
    full = 2 * limit_s(forward_flops(width, height), gpu, fp8_linears)
    return full / BLOCKS if cached else full


def estimate_table(gpu: str = "H100") -> list[str]:
    bf16, fp8 = PEAKS[gpu]
    lines = [
        f"FLOP-limit estimates ({gpu}: dense bf16 {bf16 / 1e12:.0f} TFLOP/s, fp8 {fp8 / 1e12:.0f}; "
        f"{TEXT_ROWS} text rows):",
        "",
        "| preset | size (w x h) | tokens/window | PFLOP/forward | s/step bf16 (full, 2 fwd) | s/step fp8 compute | "
        "s/step cached | 16 s clip, 50 steps (bf16) | 60 s clip |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, short in PRESETS.items():
        w, h = schedule.render_size(*PHOTO_SIZE, short)
        flops = forward_flops(w, h)
        lines.append(
            f"| {name} | {w} x {h} | {window_tokens(w, h) + TEXT_ROWS:,} | {sum(flops) / 1e15:.2f} | "
            f"{step_limit_s(w, h, gpu):.1f} | {step_limit_s(w, h, gpu, fp8_linears=True):.1f} | "
            f"{step_limit_s(w, h, gpu, cached=True):.2f} | {clip_limit_s(w, h, 16, gpu) / 60:.1f} min | "
            f"{clip_limit_s(w, h, 60, gpu) / 60:.1f} min |"
        )
    return lines


def clip_limit_s(width: int, height: int, seconds: float, gpu: str, steps: int = 50) -> float:
    frames = max(1, round(seconds * 25))
    windows = -(-schedule.denoise_length(frames) // schedule.LATENT_WINDOW)
    full = len(schedule.full_steps(steps))
    per_window = full * step_limit_s(width, height, gpu) + (steps - full) * step_limit_s(
        width, height, gpu, cached=True
    )
    return windows * per_window


def transformer_flops_meta(width: int, height: int, text_rows: int = TEXT_ROWS) -> float:
    """One forward of the full-size model counted on the meta device (checks `forward_flops`)."""
    import torch

    from avatarbot.avatar.hunyuan.model import HunyuanAvatarTransformer3DModel

    t, lat_h, lat_w = schedule.LATENT_WINDOW, height // schedule.VAE_SPACE_STRIDE, width // schedule.VAE_SPACE_STRIDE
    with torch.device("meta"):
        model = HunyuanAvatarTransformer3DModel().to(torch.bfloat16).eval()
        cfg, bf16 = model.config, torch.bfloat16
        inputs = dict(
            hidden_states=torch.zeros(1, cfg.in_channels, t, lat_h, lat_w, dtype=bf16),
            timestep=torch.zeros(1),
            ref_latents=torch.zeros(1, cfg.in_channels, t, lat_h, lat_w, dtype=bf16),
            encoder_hidden_states=torch.zeros(1, text_rows, cfg.text_embed_dim, dtype=bf16),  # the joined rows
            pooled_projections=torch.zeros(1, cfg.pooled_projection_dim, dtype=bf16),
            audio_embeds=torch.zeros(1, 4 * t - 3, cfg.audio_window, cfg.audio_states, cfg.audio_channels, dtype=bf16),
            face_mask=torch.zeros(1, 1, 1, lat_h, lat_w, dtype=bf16),
            motion_exp=torch.zeros(1, cfg.motion_buckets),
            motion_pose=torch.zeros(1, cfg.motion_buckets),
            fps=torch.zeros(1),
        )
        return counted_flops(lambda: model(**inputs))


def counted_flops(fn) -> float:
    """FLOPs of `fn()` counted by torch's FlopCounterMode (matmuls, convolutions, attention)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


# --- recording ------------------------------------------------------------------------------------
class Recorder:
    """Appends every result at once (JSON lines + markdown), so a run cut short keeps its numbers."""

    def __init__(self, out: Path, budget_s: float):
        out.mkdir(parents=True, exist_ok=True)
        self.jsonl, self.md = out / "hunyuan_gpu.jsonl", out / "hunyuan_gpu.md"
        self.deadline = time.monotonic() + budget_s

    def write(self, record: dict, line: str | None = None) -> None:
        record = {"time": time.strftime("%Y-%m-%d %H:%M:%S"), **record}
        with self.jsonl.open("a") as f:
            f.write(json.dumps(record, default=str) + "\n")
        if line is not None:
            with self.md.open("a") as f:
                f.write(line + "\n")
            print(line, flush=True)

    def left_s(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, name: str, estimate_s: float, fn, *args, **kwargs):
        """fn() -> (record dict, markdown line). Skipped when the budget cannot cover estimate_s."""
        if self.left_s() < estimate_s:
            self.write({"case": name, "skipped": f"time budget ({self.left_s():.0f} s left, needs ~{estimate_s:.0f})"},
                       f"| {name} | skipped: time budget |")  # fmt: skip
            return None
        started = time.monotonic()
        try:
            record, line = fn(*args, **kwargs)
        except Exception as exc:  # record and go on: one failure must not cost the rest of the run
            self.write(
                {"case": name, "error": repr(exc)[:2000], "traceback": traceback.format_exc()[-4000:]},
                f"| {name} | failed: {type(exc).__name__}: {str(exc)[:200]} |",
            )
            free_memory()
            return None
        self.write({"case": name, "wall_s": time.monotonic() - started, **record}, line)
        return record


def free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --- building -------------------------------------------------------------------------------------
class Env:
    def __init__(self, smoke: bool, device: str | None = None):
        import torch

        self.smoke = smoke
        self.cuda = torch.cuda.is_available() and not smoke and device != "cpu"
        self.device = torch.device("cuda" if self.cuda else "cpu")
        self.dtype = torch.bfloat16 if self.cuda else torch.float32
        self.helper_dtype = torch.float16 if self.cuda else torch.float32
        name = torch.cuda.get_device_name() if self.cuda else "CPU"
        self.gpu_name = name
        self.gpu = "H200" if "H200" in name else "H100" if "H100" in name else "CPU" if not self.cuda else "H100"

        # GPU memory of models the bench keeps for later cases, left out of the case's peak.
        self.others = 0

    def allocated(self) -> int:
        import torch

        return torch.cuda.memory_allocated() if self.cuda else 0

    def peak_gib(self) -> float | None:
        """Peak since the last reset, less the memory of the models this case does not use."""
        import torch

        return (torch.cuda.max_memory_allocated() - self.others) / 1024**3 if self.cuda else None

    def reset_peak(self) -> None:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    def sync(self) -> None:
        import torch

        if self.cuda:
            torch.cuda.synchronize()


def transformer_config(env: Env) -> dict:
    from avatarbot.avatar.hunyuan.model import TINY_CONFIG

    return dict(TINY_CONFIG) if env.smoke else {}


def build_transformer(env: Env, seed: int = 0):
    """The transformer with random weights: linears N(0, 0.02) and zero biases, so 60 random
    blocks keep activations in range (PyTorch's default init lets them grow), audio adapters
    non-zero (zero-initialised upstream) so they do real work."""
    import torch

    from avatarbot.avatar.hunyuan.model import HunyuanAvatarTransformer3DModel

    torch.manual_seed(seed)
    with torch.device(env.device):
        model = HunyuanAvatarTransformer3DModel(**transformer_config(env)).to(env.dtype).eval()
    generator = torch.Generator(env.device).manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.normal_(0, 0.02, generator=generator)
                if module.bias is not None:
                    module.bias.zero_()
    model.requires_grad_(False)
    return model


def window_inputs(env: Env, model, width: int, height: int, batch: int):
    """Inputs of one window: batch 1 (the conditional branch) or 2 (both branches, the second
    with the negative prompt's row count)."""
    import torch

    cfg = model.config
    g = torch.Generator(env.device).manual_seed(1)
    t = schedule.LATENT_WINDOW if not env.smoke else 3
    lat_h, lat_w = height // schedule.VAE_SPACE_STRIDE, width // schedule.VAE_SPACE_STRIDE
    rows, kept = (ENCODER_ROWS, (TEXT_ROWS, NEG_TEXT_ROWS)) if not env.smoke else (12, (10, 8))
    mask = torch.zeros(batch, rows, dtype=torch.long, device=env.device)
    for i in range(batch):
        mask[i, : kept[i]] = 1

    def rand(*shape):
        return torch.randn(*shape, generator=g, device=env.device).to(env.dtype)

    return dict(
        hidden_states=rand(batch, cfg.in_channels, t, lat_h, lat_w),
        timestep=torch.full((batch,), 900.0, device=env.device),
        ref_latents=rand(batch, cfg.in_channels, t, lat_h, lat_w),
        encoder_hidden_states=rand(batch, rows, cfg.text_embed_dim),
        encoder_attention_mask=mask,
        pooled_projections=rand(batch, cfg.pooled_projection_dim),
        audio_embeds=rand(batch, 4 * t - 3, cfg.audio_window, cfg.audio_states, cfg.audio_channels),
        face_mask=torch.ones(batch, 1, 1, lat_h, lat_w, device=env.device, dtype=env.dtype),
        motion_exp=torch.full((batch, cfg.motion_buckets), 30.0, device=env.device),
        motion_pose=torch.full((batch, cfg.motion_buckets), 25.0, device=env.device),
        fps=torch.full((batch,), 25.0, device=env.device),
    )


def preset_size(env: Env, preset: str) -> tuple[int, int]:
    if env.smoke:
        return (48, 32)
    return schedule.render_size(*PHOTO_SIZE, PRESETS[preset])


# --- 1. seconds per step --------------------------------------------------------------------------
def measure_step(env: Env, model, width: int, height: int, batched: bool, steps: int):
    """(full s/step, cached s/step, peak GiB, the conditional branch's output of the first forward)."""
    import torch

    both = window_inputs(env, model, width, height, 2)
    branches = [both] if batched else separate_branches(both)

    def full_step():
        return [model(**x, return_block_cache=True) for x in branches]

    with torch.no_grad():
        first = full_step()  # warm-up (and the output for the numerics)
        output = first[0].sample[:1].float().cpu()
        caches = [o.block_cache for o in first]
        del first
        env.reset_peak()
        start = time.perf_counter()
        for _ in range(steps):
            full_step()
        env.sync()
        full_s = (time.perf_counter() - start) / steps
        start = time.perf_counter()
        for _ in range(steps):
            for x, cache in zip(branches, caches, strict=True):
                model(**x, block_cache=cache)
        env.sync()
        cached_s = (time.perf_counter() - start) / steps
    return full_s, cached_s, env.peak_gib(), output


def separate_branches(both: dict) -> list[dict]:
    """The two guidance branches of batched inputs, as two batches of one."""
    import torch

    return [{k: v[i : i + 1] if torch.is_tensor(v) else v for k, v in both.items()} for i in range(2)]


def relative_error(output, reference) -> float:
    return float((output - reference).norm() / reference.norm())


def step_case(env: Env, model, weights: str, attention: str, preset: str, batched: bool, steps: int, refs: dict):
    from avatarbot.avatar.hunyuan import speed

    width, height = preset_size(env, preset)
    speed.set_attention(model, attention)
    env.others = env.allocated() - getattr(model, "bench_gpu_bytes", 0)
    full_s, cached_s, peak, output = measure_step(env, model, width, height, batched, steps)
    # References: bf16 with sdpa, branches separate (the default path), and fp8 storage likewise.
    key = (weights, attention, preset)
    is_reference = attention == "sdpa" and not batched and key not in refs
    if is_reference:
        refs[key] = output
    finite = bool(output.isfinite().all())
    errors = {}
    for other in ("bf16", "fp8 storage"):
        ref = refs.get((other, "sdpa", preset))
        if (
            ref is not None
            and not (is_reference and other == weights)
            and (other == "bf16" or weights == "fp8 compute")
        ):
            errors[f"rel_err_vs_{other.replace(' ', '_')}"] = relative_error(output, ref)
    fp8 = weights.startswith("fp8 compute")
    limit = step_limit_s(width, height, env.gpu, fp8_linears=fp8)
    record = dict(
        weights=weights, attention=attention, preset=preset, size=f"{width}x{height}", batched=batched,
        full_s=full_s, cached_s=cached_s, peak_gib=peak, limit_s=limit, finite=finite, **errors,
    )  # fmt: skip
    err = ", ".join(f"{k.removeprefix('rel_err_vs_')} {v:.2e}" for k, v in errors.items()) or "—"
    line = (
        f"| {preset} {width} x {height} | {weights} | {attention} | {'batched' if batched else 'separate'} | "
        f"{full_s:.2f} ({limit:.2f}) | {cached_s:.3f} | {_gib(peak)} | {err}{'' if finite else ' NON-FINITE'} |"
    )
    return record, line


def _gib(value) -> str:
    return "—" if value is None else f"{value:.1f}"


# --- 2. the full pipeline -------------------------------------------------------------------------
def word_tokenizer(texts: list[str]):
    """A word-level tokenizer over the words the bench uses (no download). Upstream pads every
    prompt to 351 ids, so what LLaVA computes does not depend on the tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    special = ["[UNK]", "[PAD]", "<image>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    words = sorted({w for text in texts for w in text.replace("<", " <").replace(">", "> ").split()} - set(special))
    vocab = {w: i for i, w in enumerate(special + words)}
    word_level = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    word_level.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=word_level, unk_token="[UNK]", pad_token="[PAD]", additional_special_tokens=special[2:]
    )


def build_helpers(env: Env):
    """Text encoders, whisper and VAE from their full-size configs, random weights."""
    import torch
    from diffusers import AutoencoderKLHunyuanVideo
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperModel,
    )

    from avatarbot.avatar.hunyuan.conditioning import (
        NEGATIVE_PROMPT,
        PROMPT_TEMPLATE,
        LlavaPromptEncoder,
        WhisperAudioEncoder,
        full_prompt,
    )

    tokenizer = word_tokenizer([PROMPT_TEMPLATE, NEGATIVE_PROMPT, full_prompt(PROMPT)])
    ids = tokenizer.convert_tokens_to_ids
    llama = TINY["llama"] if env.smoke else LLAMA3_8B
    vision = TINY["vision"] if env.smoke else CLIP_VIT_L_336
    clip = TINY["clip"] if env.smoke else CLIP_L_TEXT
    whisper = TINY["whisper"] if env.smoke else WHISPER_TINY
    torch.manual_seed(0)
    with torch.device(env.device):
        llava = LlavaForConditionalGeneration(
            LlavaConfig(
                vision_config=CLIPVisionConfig(**vision),
                text_config=LlamaConfig(**llama, pad_token_id=ids("[PAD]")),
                image_token_id=ids("<image>"),
                pad_token_id=ids("[PAD]"),
                vision_feature_layer=-2,
                vision_feature_select_strategy="default",
            )
        ).to(env.helper_dtype)
        clip_model = CLIPTextModel(
            CLIPTextConfig(**clip, eos_token_id=ids("<|eot_id|>"), pad_token_id=ids("[PAD]"), bos_token_id=0)
        ).to(env.helper_dtype)
        whisper_encoder = WhisperModel(
            WhisperConfig(**whisper, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)
        ).encoder.float()
        vae = AutoencoderKLHunyuanVideo(**(TINY["vae"] if env.smoke else {})).to(env.helper_dtype)
    for module in (llava, clip_model, whisper_encoder, vae):
        module.eval().requires_grad_(False)
    template_tokens = len(tokenizer(PROMPT_TEMPLATE.split("{}")[0])["input_ids"])
    prompt_encoder = LlavaPromptEncoder(tokenizer, llava, tokenizer, clip_model, template_tokens=template_tokens)
    return prompt_encoder, WhisperAudioEncoder(WhisperFeatureExtractor(), whisper_encoder), vae


PROMPT = "A person talking to the camera in a bright room."
IMAGE_FEATURES = 576  # CLIP ViT-L/14 at 336 px: 24 x 24 patches


class StageTimer:
    """Wall time per pipeline stage, read off the pipeline's own calls (no change to the pipeline)."""

    def __init__(self, env: Env, pipe):
        self.env, self.pipe, self.times, self.peaks = env, pipe, {}, {}

    @contextmanager
    def stage(self, name: str):
        self.env.sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self.env.sync()
            self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - start
            self.peaks[name] = self.env.peak_gib()

    def wrap(self, obj, attr: str, name: str):
        original = getattr(obj, attr)

        def timed(*args, **kwargs):
            with self.stage(name):
                return original(*args, **kwargs)

        setattr(obj, attr, timed)


def pipeline_case(env: Env, transformer, steps: int, num_frames: int):
    import numpy as np

    from avatarbot.avatar.hunyuan.pipeline import HunyuanVideoAvatarPipeline

    env.others = env.allocated() - getattr(transformer, "bench_gpu_bytes", 0)
    prompt_encoder, audio_encoder, vae = build_helpers(env)
    pipe = HunyuanVideoAvatarPipeline(
        transformer, vae, prompt_encoder, audio_encoder, device=env.device,
        latent_window=schedule.LATENT_WINDOW if not env.smoke else 5,
    )  # fmt: skip
    width, height = PIPELINE_SIZE if not env.smoke else (64, 64)
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)
    seconds = num_frames / 25
    t = np.arange(int(seconds * 16000)) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)

    timer = StageTimer(env, pipe)
    timer.wrap(prompt_encoder, "encode", "text encoders")
    timer.wrap(audio_encoder, "frame_features", "whisper")
    timer.wrap(pipe, "_reference_latents", "VAE encode")
    timer.wrap(pipe, "_decode", "VAE decode")
    step_times = []
    last = [time.perf_counter()]

    def on_step(done, total):
        env.sync()
        now = time.perf_counter()
        step_times.append(now - last[0])
        last[0] = now

    env.reset_peak()
    start = time.perf_counter()
    frames = pipe(
        image=photo, audio=audio, prompt=PROMPT, num_inference_steps=steps, quality=width if not env.smoke else 64,
        num_frames=num_frames, step_cache=False, callback=on_step,
    )  # fmt: skip
    env.sync()
    total = time.perf_counter() - start
    denoise = total - sum(timer.times.values())
    peak = env.peak_gib()
    h, w = frames.shape[1:3]
    # The first step carries the step-loop set-up; the encoders ran before it (timed apart).
    first_step = step_times[0] - sum(v for k, v in timer.times.items() if k != "VAE decode") if step_times else 0.0
    per_step = (sum(step_times[1:]) / (len(step_times) - 1)) if len(step_times) > 1 else max(first_step, 0.0)
    step_limit = step_limit_s(w, h, env.gpu)
    full, cached = len(schedule.full_steps(50)), 50 - len(schedule.full_steps(50))
    record = dict(
        size=f"{w}x{h}", frames=int(frames.shape[0]), steps=steps, total_s=total, stages=timer.times,
        stage_peak_gib=timer.peaks, denoise_s=denoise, per_step_s=per_step, step_limit_s=step_limit, peak_gib=peak,
        frames_finite=bool(np.isfinite(frames).all()),
    )  # fmt: skip
    line = (
        f"| full render {w} x {h}, {frames.shape[0]} frames, {steps} steps (no cache) | total {total:.1f} s | "
        + " | ".join(f"{k} {v:.1f} s" for k, v in timer.times.items())
        + f" | denoise {denoise:.1f} s ({per_step:.2f} s/step; FLOP limit {step_limit:.2f}) | "
        f"50 steps with the cache ({full} full + {cached} cached) ~{full * per_step / 60:.1f} min | peak {_gib(peak)} GiB |"
    )
    del pipe, prompt_encoder, audio_encoder, vae
    free_memory()
    return record, line


def helper_flops_case(env: Env):
    """FLOPs of the helpers at the full render, counted on the meta device (nothing runs)."""
    import numpy as np
    import torch

    from avatarbot.avatar.hunyuan.conditioning import (
        NEGATIVE_PROMPT,
        TEMPLATE_TOKENS,
        TEXT_MAX_TOKENS,
        full_prompt,
        llava_pixels,
    )
    from avatarbot.avatar.hunyuan.vae import configure_vae

    meta = Env(env.smoke, device="cpu")
    meta.device = torch.device("meta")
    prompt_encoder, audio_encoder, vae = build_helpers(meta)
    configure_vae(vae)
    width, height = PIPELINE_SIZE if not env.smoke else (64, 64)
    photo = np.zeros((height, width, 3), dtype=np.uint8)
    counts = {}

    llava = prompt_encoder.llava.model  # LLaVA's parts, each counted on its own: its merge of
    # image features into the text checks values, which the meta device has not got
    text_config = llava.language_model.config
    rows = TEMPLATE_TOKENS + TEXT_MAX_TOKENS - 1 + IMAGE_FEATURES  # upstream's 351 ids, <image> -> 576 rows

    def encode_both():
        for _ in (full_prompt(PROMPT), NEGATIVE_PROMPT):
            llava.vision_tower(llava_pixels(photo).to("meta", meta.helper_dtype), output_hidden_states=True)
            vision_width = llava.vision_tower.config.hidden_size
            llava.multi_modal_projector(
                torch.zeros(1, IMAGE_FEATURES, vision_width, device="meta", dtype=meta.helper_dtype)
            )
            llava.language_model(
                inputs_embeds=torch.zeros(1, rows, text_config.hidden_size, device="meta", dtype=meta.helper_dtype),
                output_hidden_states=True,
            )
            prompt_encoder.clip(input_ids=torch.zeros(1, 77, dtype=torch.long, device="meta"))

    counts["text encoders"] = counted_flops(encode_both)
    counts["whisper"] = counted_flops(
        lambda: audio_encoder.encoder(torch.zeros(1, 80, 3000, device="meta"), output_hidden_states=True)
    )
    frames = schedule.video_frames_for(schedule.LATENT_WINDOW if not env.smoke else 5)
    video = torch.zeros(1, 3, frames, height, width, device="meta", dtype=meta.helper_dtype)
    counts["VAE encode"] = counted_flops(lambda: vae.encode(video))
    latents = torch.zeros(
        1, vae.config.latent_channels, schedule.decoded_latents(PIPELINE_FRAMES), height // 8, width // 8,
        device="meta", dtype=meta.helper_dtype,
    )  # fmt: skip
    counts["VAE decode"] = counted_flops(lambda: vae.decode(latents))
    bf16 = PEAKS[env.gpu if env.gpu != "CPU" else "H100"][0]
    record = {"flops": counts, "limit_s": {k: v / bf16 for k, v in counts.items()}}
    line = (
        "| FLOP limit of the helpers (meta count) | "
        + " | ".join(f"{k} {v / 1e12:.3g} TFLOP = {v / bf16:.3g} s" for k, v in counts.items())
        + " |"
    )
    return record, line


# --- 3. the 24 GB recipe, 4. compile -------------------------------------------------------------
def offload_case(env: Env, model, preset: str, batched: bool, steps: int):
    """fp8 weights streamed block by block from CPU memory (diffusers group offloading)."""

    width, height = preset_size(env, preset)
    if not getattr(model, "_bench_offloaded", False):
        model.to("cpu")
        free_memory()
        model.enable_group_offload(
            onload_device=env.device, offload_type="block_level", num_blocks_per_group=1, use_stream=False
        )
        model._bench_offloaded = True
    env.others = env.allocated()  # all of it belongs to other models: this one lives in CPU memory
    full_s, cached_s, peak, _ = measure_step(env, model, width, height, batched, steps)
    resident = (env.allocated() - env.others) / 2**30 if env.cuda else None  # between steps
    record = dict(
        preset=preset, batched=batched, full_s=full_s, cached_s=cached_s, peak_gib=peak, resident_gib=resident
    )
    line = (
        f"| {preset} {width} x {height} | fp8 storage + block offload (24 GB recipe) | sdpa | "
        f"{'batched' if batched else 'separate'} | {full_s:.2f} ({step_limit_s(width, height, env.gpu):.2f}) | "
        f"{cached_s:.3f} | {_gib(peak)} | — |"
    )
    return record, line


def compile_case(env: Env, model, weights: str, preset: str, steps: int, cache_dir: Path):
    import torch

    from avatarbot.avatar.hunyuan import speed

    width, height = preset_size(env, preset)
    inputs = window_inputs(env, model, width, height, 1)
    with torch.no_grad():
        env.sync()
        start = time.perf_counter()
        eager = model(**inputs).sample.float().cpu()
        env.sync()
        eager_s = time.perf_counter() - start
        speed.compile_blocks(model, str(cache_dir))
        start = time.perf_counter()
        compiled = model(**inputs).sample.float().cpu()
        env.sync()
        cold_s = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(steps):
            model(**inputs)
        env.sync()
        steady_s = (time.perf_counter() - start) / steps
    error = relative_error(compiled, eager)
    record = dict(
        weights=weights, preset=preset, eager_forward_s=eager_s, cold_forward_s=cold_s, steady_forward_s=steady_s,
        rel_err_vs_eager=error,
    )  # fmt: skip
    line = (
        f"| compile ({weights}, {preset} {width} x {height}) | first forward {cold_s:.1f} s (compile) | "
        f"eager forward {eager_s:.2f} s | compiled forward {steady_s:.2f} s | gain {eager_s / steady_s:.2f}x | "
        f"relative error vs eager {error:.1e} |"
    )
    return record, line


def numerics_case(env: Env, model, reference_bf16, preset: str):
    """fp8 compute from bf16 weights (dtype bf16 + fp8_compute), on a copy of `model`: its
    relative error vs bf16."""
    import torch

    from avatarbot.avatar.hunyuan import speed

    width, height = preset_size(env, preset)
    model = copy.deepcopy(model)
    speed.enable_fp8_compute(model, env.device)
    with torch.no_grad():
        conditional = separate_branches(window_inputs(env, model, width, height, 2))[0]  # as measure_step's
        out = model(**conditional).sample.float().cpu()
    del model
    err = relative_error(out, reference_bf16)
    return {"rel_err_vs_bf16": err}, f"| fp8 compute from bf16 weights, {preset} | relative error vs bf16 {err:.2e} |"


# --- main -----------------------------------------------------------------------------------------
def header(env: Env, args) -> tuple[dict, str]:
    import diffusers
    import torch

    versions = {"torch": torch.__version__, "diffusers": diffusers.__version__, "python": platform.python_version()}
    for package in ("torchao", "transformers"):
        try:
            versions[package] = __import__(package).__version__
        except ImportError:
            versions[package] = None
    gpus = torch.cuda.device_count() if env.cuda else 0
    record = {
        "case": "environment",
        "gpu": env.gpu_name,
        "gpus": gpus,
        "smoke": env.smoke,
        **versions,
        "args": vars(args),
    }
    line = (
        f"\n### Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {env.gpu_name} "
        f"({'smoke test: tiny configs, numbers mean nothing' if env.smoke else 'random full-size weights'}); "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f"; {args.steps} timed step(s) after one warm-up\n\n"
        "| case | weights | attention | guidance branches | s/step full (FLOP limit) | s/step cached | peak GiB | "
        "relative error |\n|---|---|---|---|---|---|---|---|"
    )
    return record, line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--estimate-only", action="store_true", help="print the FLOP-limit tables; needs no GPU")
    parser.add_argument("--out", type=Path, default=Path("bench/out"), help="folder for hunyuan_gpu.{jsonl,md}")
    parser.add_argument("--quick", action="store_true", help="standard preset, fewer kernels, no compile")
    parser.add_argument("--budget", type=float, default=540, help="seconds; what would not fit is skipped")
    parser.add_argument("--steps", type=int, default=1, help="timed steps per case (after one warm-up)")
    parser.add_argument("--smoke", action="store_true", help="run every case on the CPU with tiny configs")
    args = parser.parse_args()

    if args.estimate_only:
        print("\n".join(estimate_table()))
        width, height = schedule.render_size(*PHOTO_SIZE, PRESETS["standard"])
        counted, formula = transformer_flops_meta(width, height), sum(forward_flops(width, height))
        print(f"\nstandard preset, one forward: {counted / 1e15:.3f} PFLOP counted on the meta device, "
              f"{formula / 1e15:.3f} by the formula ({counted / formula - 1:+.1%})")  # fmt: skip
        _, line = helper_flops_case(Env(smoke=False, device="cpu"))
        print("\n" + line)
        return 0
    import torch

    env = Env(args.smoke)
    if not env.cuda and not env.smoke:
        print("no CUDA GPU visible; use --estimate-only or --smoke", file=sys.stderr)
        return 1
    rec = Recorder(args.out, args.budget)
    rec.write(*header(env, args))
    run_all(env, rec, args)
    gpus = torch.cuda.device_count() if env.cuda else 0
    rec.write(
        {"case": "context parallel", "gpus": gpus},
        f"| context parallel | not measured: {gpus} GPU(s) here, it needs 2+ (avatarbot worker --gpus) |",
    )
    print(f"\nresults: {rec.md} and {rec.jsonl}")
    return 0


def run_all(env: Env, rec: Recorder, args) -> None:
    """Every case, most valuable first, so a budget cut drops the least."""
    steps, quick = args.steps, args.quick
    refs: dict = {}
    models: dict = {}
    est = {"fast": 8, "standard": 15, "high": 45}  # rough seconds per case on an H200

    def step(weights: str, attention: str, preset: str, batched: bool):
        model = models.get(weights)
        if model is None:
            return None
        name = f"{weights} {attention} {'batched' if batched else 'separate'} {preset}"
        args_ = (env, model, weights, attention, preset, batched, steps, refs)
        result = rec.run(name, est[preset], step_case, *args_)
        speed_reset(model)
        return result

    def build(weights: str, make):
        before = env.allocated()

        def built():
            model = make()
            free_memory()
            model.bench_gpu_bytes = env.allocated() - before
            models[weights] = model
            return {"gib": model.bench_gpu_bytes / 2**30}, None

        rec.run(f"build {weights}", 30, built)

    def fp8_storage_model():
        from avatarbot.avatar.hunyuan import fp8

        model = copy.deepcopy(models["bf16"])
        fp8.quantize_model_(model)
        return model

    def fp8_compute_model(source: str):
        from avatarbot.avatar.hunyuan import speed

        model = copy.deepcopy(models[source])
        speed.enable_fp8_compute(model, env.device)
        return model

    build("bf16", lambda: build_transformer(env))
    # 1. The core matrix at the standard preset.
    step("bf16", "sdpa", "standard", False)
    step("bf16", "sdpa", "standard", True)
    if "bf16" in models:
        build("fp8 storage", fp8_storage_model)
    step("fp8 storage", "sdpa", "standard", False)
    if "fp8 storage" in models:
        build("fp8 compute", lambda: fp8_compute_model("fp8 storage"))
    step("fp8 compute", "sdpa", "standard", False)
    step("fp8 compute", "sdpa", "standard", True)
    # Attention kernels with bf16, then the fastest with fp8 compute.
    timings = {}
    for attention in ["flash", "cudnn"] + ([] if quick else ["efficient"]):
        result = step("bf16", attention, "standard", False)
        if result:
            timings[attention] = result["full_s"]
    for attention in ["cudnn"] + ([] if quick else ["efficient"]):
        step("bf16", attention, "standard", True)
    if timings:
        step("fp8 compute", min(timings, key=timings.get), "standard", False)

    # 2. The full render at 704 x 768, 129 frames, with the defaults (bf16, sdpa, separate).
    rec.run("helper FLOPs (meta device)", 20, helper_flops_case, env)
    if "bf16" in models:
        frames = PIPELINE_FRAMES if not env.smoke else 17
        rec.run("full pipeline", 120, pipeline_case, env, models["bf16"], 1 if quick else 2, frames)

    # 3. The 24 GB recipe: fp8 storage + block offload at the 512 preset (moves that model off the GPU).
    if "fp8 storage" in models:
        for batched in (False,) if quick else (False, True):
            name = f"24 GB recipe {'batched' if batched else 'separate'} standard"
            rec.run(name, 60, offload_case, env, models.pop("fp8 storage") if batched or quick else models["fp8 storage"],
                    "standard", batched, steps)  # fmt: skip
    if quick:
        return

    # Presets.
    for preset in ("fast", "high"):
        step("bf16", "sdpa", preset, False)
        step("fp8 compute", "sdpa", preset, False)
        step("fp8 compute", "sdpa", preset, True)
        step("bf16", "sdpa", preset, True)
    # fp8 compute straight from bf16 weights (per-row scales of the original weights).
    if "bf16" in models and ("bf16", "sdpa", "standard") in refs:
        rec.run("fp8 compute from bf16 weights: numerics", 30, numerics_case, env, models["bf16"],
                refs[("bf16", "sdpa", "standard")], "standard")  # fmt: skip
        free_memory()
    # 4. torch.compile: the bf16 model (a default worker with compile = true), then fp8 compute
    # (torchao's dynamic scaling fuses into the matmuls only when compiled).
    for weights in ("bf16", "fp8 compute"):
        if weights in models:
            rec.run(f"compile {weights} standard", 150, compile_case, env, models[weights], weights, "standard",
                    max(steps, 2), Path(tempfile.gettempdir()) / "avatarbot-inductor")  # fmt: skip


def speed_reset(model) -> None:
    from avatarbot.avatar.hunyuan import speed

    speed.set_attention(model, "sdpa")


if __name__ == "__main__":
    sys.exit(main())
