"""Speed modes compute what the reference path computes (tiny random configs, CPU, fp32).

- cfg_batch: both guidance branches as one batch of two (the shorter prompt padded, with a key
  mask) equals two batches of one, for the transformer alone and for whole renders with the step
  cache, in both text_tokens modes. Tolerance: 1e-5 absolute on fp32 latents (measured ~4e-7).
- context parallel: a render by 2 processes on gloo (Ulysses, through the same lockstep as
  `avatarbot worker --gpus`) equals the render of 1 process; a cancelled render stops both
  ranks and the next render still agrees. Tolerance: 1e-4 on latents, 1 level on frames. And the
  engine itself, from converted (bf16) weights with gpus_per_render = 2, within bf16 noise.
- attention backends: torch's flash kernel against SDPA where the CPU runs it; the GPU kernels
  (cudnn, efficient, flash-attn, sage) and fp8 compute are GPU-only and skip here with the reason.
- compile: the compiled blocks equal eager ones, across a change of text length.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")

from test_hunyuan_pipeline import _photo, _speech, tiny_pipeline  # noqa: E402

from avatarbot.avatar.hunyuan.model import TINY_CONFIG, HunyuanAvatarTransformer3DModel  # noqa: E402

pytestmark = pytest.mark.gpu  # needs the gpu extra (torch, diffusers); runs on the CPU

LATENT_ATOL = 1e-5
PARALLEL_ATOL = 1e-4
HERE = Path(__file__).resolve().parent


def tiny_model(seed=0, **overrides):
    torch.manual_seed(seed)
    model = HunyuanAvatarTransformer3DModel(**{**TINY_CONFIG, **overrides}).eval()
    for adapter in model.audio_adapters:  # zero-initialised upstream; make them matter here
        torch.nn.init.normal_(adapter.to_out.weight, std=0.5)
    return model


def model_inputs(batch=1, rows=9, mask=None, frames=3, seed=1, width=6):
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=g)

    return dict(
        hidden_states=rand(batch, 4, frames, 4, width),
        timestep=torch.full((batch,), 500.0),
        ref_latents=rand(batch, 4, frames, 4, width),
        encoder_hidden_states=rand(batch, rows, 16),
        pooled_projections=rand(batch, 8),
        audio_embeds=rand(batch, 4 * frames - 3, 10, 3, 8),
        face_mask=torch.ones(batch, 1, 1, 4, width),
        motion_exp=torch.full((batch, 4), 30.0),
        motion_pose=torch.full((batch, 4), 25.0),
        fps=torch.full((batch,), 25.0),
        encoder_attention_mask=mask,
    )


def batch_of(a: dict, b: dict) -> dict:
    return {k: torch.cat([a[k], b[k]]) if torch.is_tensor(a[k]) else a[k] for k in a}


def render_latents(pipe, inner=None, **kwargs):
    """The final latents of a render (what the VAE decodes) and its frames. `inner`: the
    pipeline that decodes, when `pipe` wraps it."""
    inner = inner or pipe
    kept = {}
    decode = inner._decode

    def keep(latents, num_frames):
        kept["latents"] = latents.clone()
        return decode(latents, num_frames)

    inner._decode = keep
    try:
        frames = pipe(**kwargs)
    finally:
        inner._decode = decode
    return kept["latents"], frames


# Text rows: 589 for this prompt, 604 for the negative one: the 2 ranks split them unevenly
# (diffusers' "anything" sharding); only the video tokens are ever gathered.
RENDER = dict(num_inference_steps=10, quality=64, seed=2, prompt="A person talking")


# --- cfg_batch ---------------------------------------------------------------------------------
def test_one_batch_of_two_equals_two_batches_of_one_in_the_transformer():
    """Masks counting 6 and 4 rows, in upstream's misaligned pattern: the batch keeps 6 rows and
    masks the second prompt's last 2 as keys; full and cached (last-block) forwards agree."""
    model = tiny_model()
    a = model_inputs(mask=torch.tensor([[1, 1, 0, 1, 1, 1, 0, 0, 1]]), seed=1)
    b = model_inputs(mask=torch.tensor([[1, 1, 1, 0, 0, 0, 0, 0, 1]]), seed=2)
    with torch.no_grad():
        alone = [model(**x, return_block_cache=True) for x in (a, b)]
        both = model(**batch_of(a, b), return_block_cache=True)
        assert both.block_cache.text.shape[1] == 6
        assert both.block_cache.text_mask.tolist() == [[True] * 6, [True] * 4 + [False] * 2]
        for i, one in enumerate(alone):
            torch.testing.assert_close(both.sample[i : i + 1], one.sample, rtol=0, atol=LATENT_ATOL)
        cached_both = model(**batch_of(a, b), block_cache=both.block_cache)
        for i, (x, one) in enumerate(zip((a, b), alone, strict=True)):
            cached = model(**x, block_cache=one.block_cache)
            torch.testing.assert_close(cached_both.sample[i : i + 1], cached.sample, rtol=0, atol=LATENT_ATOL)
    assert not torch.allclose(alone[0].sample, alone[1].sample)  # the two branches really differ


@pytest.mark.parametrize("text_tokens", ["upstream", "all"])
def test_batched_guidance_renders_what_separate_branches_render(text_tokens):
    """Whole renders with the step cache (10 steps: 6 full, 4 cached), sliding windows, both
    guidance phases (negative prompt, then the prompt twice)."""
    from test_hunyuan_pipeline import tiny_prompt_encoder

    renders = []
    for cfg_batch in (False, True):
        pipe = tiny_pipeline(latent_window=5, cfg_batch=cfg_batch)
        pipe.prompt_encoder = tiny_prompt_encoder(text_tokens)
        renders.append(render_latents(pipe, image=_photo().rgb, audio=_speech(1.0).samples, **RENDER))
    (separate, separate_frames), (batched, batched_frames) = renders
    torch.testing.assert_close(batched, separate, rtol=0, atol=LATENT_ATOL)
    assert np.abs(batched_frames.astype(int) - separate_frames.astype(int)).max() <= 1


def test_batched_guidance_runs_one_forward_per_window():
    pipe = tiny_pipeline(latent_window=5, cfg_batch=True)
    batches = []
    pipe.transformer.register_forward_hook(
        lambda _m, _a, kwargs, _o: batches.append(kwargs["hidden_states"].shape[0]), with_kwargs=True
    )
    pipe(image=_photo().rgb, audio=_speech(0.4).samples, num_inference_steps=2, quality=64)
    assert batches and set(batches) == {2}


def test_cfg_batch_refuses_a_kernel_without_masks():
    with pytest.raises(ValueError, match="takes a mask"):
        tiny_pipeline(cfg_batch=True, attention="flash")


@pytest.mark.parametrize(
    ("cfg_batch", "attention", "context_parallel", "why"),
    [
        (True, "flash", "none", "takes a mask"),
        (True, "sdpa", "ulysses", "do not combine"),
        (False, "sdpa", "ring", "ring attention needs"),
    ],
)
def test_modes_that_do_not_combine_are_refused_before_anything_loads(cfg_batch, attention, context_parallel, why):
    from avatarbot.avatar.hunyuan import speed

    with pytest.raises(ValueError, match=why):
        speed.check_modes(cfg_batch, attention, context_parallel)
    speed.check_modes(False, attention, "ulysses")  # each alone is fine


# --- attention backends ------------------------------------------------------------------------
def _cpu_runs_flash() -> bool:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q = torch.randn(1, 2, 8, 8)
    try:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            torch.nn.functional.scaled_dot_product_attention(q, q, q)
    except RuntimeError:
        return False
    return True


@pytest.mark.skipif(not _cpu_runs_flash(), reason="this torch has no CPU flash-attention kernel")
def test_flash_attention_matches_sdpa():
    from avatarbot.avatar.hunyuan import speed

    x = model_inputs()
    with torch.no_grad():
        reference = tiny_model()(**x).sample
        flash = tiny_model()
        speed.set_attention(flash, "flash")
        try:
            out = flash(**x).sample
        finally:
            flash.reset_attention_backend()
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-5)


def test_unknown_or_uninstalled_attention_is_refused_clearly():
    from avatarbot.avatar.hunyuan import speed

    with pytest.raises(ValueError, match="must be one of"):
        speed.set_attention(tiny_model(), "fastest")
    try:
        import sageattention  # noqa: F401
    except ImportError:
        with pytest.raises(Exception, match="(?i)sage"):
            speed.set_attention(tiny_model(), "sage")


GPU = torch.cuda.is_available()
GPU_FP8 = GPU and torch.cuda.get_device_capability() >= (8, 9)


@pytest.mark.skipif(not GPU, reason="GPU-only: torch's cuDNN and memory-efficient kernels need CUDA")
@pytest.mark.parametrize("attention", ["cudnn", "efficient", "flash"])
def test_gpu_attention_kernels_match_sdpa_in_bf16(attention):
    from avatarbot.avatar.hunyuan import speed

    x = {k: v.cuda() if torch.is_tensor(v) else v for k, v in model_inputs(width=8).items()}
    model = tiny_model(num_attention_heads=2, attention_head_dim=64, rope_axes_dim=(16, 24, 24)).cuda()
    model.to(torch.bfloat16)
    x = {k: v.to(torch.bfloat16) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in x.items()}
    with torch.no_grad():
        reference = model(**x).sample.float()
        speed.set_attention(model, attention)
        out = model(**x).sample.float()
        model.reset_attention_backend()
    assert ((out - reference).norm() / reference.norm()).item() < 2e-2


# --- fp8 compute -------------------------------------------------------------------------------
def test_dequantised_fp8_blocks_compute_what_fp8_storage_computes():
    """The reference side of fp8 compute: a block whose Fp8Linear layers are turned back into
    plain linears (what torchao then quantises) computes exactly what the fp8-storage path does."""
    from avatarbot.avatar.hunyuan import fp8

    model = tiny_model()
    fp8.quantize_model_(model)
    x = model_inputs()
    with torch.no_grad():
        stored = model(**x).sample
        for block in [*model.transformer_blocks, *model.single_transformer_blocks]:
            fp8.dequantize_block_(block)
        assert not any(isinstance(m, fp8.Fp8Linear) for m in model.modules())
        torch.testing.assert_close(model(**x).sample, stored, rtol=0, atol=1e-6)


@pytest.mark.skipif(GPU_FP8, reason="this GPU multiplies in fp8")
def test_fp8_compute_refuses_clearly_where_there_is_no_fp8_matmul():
    with pytest.raises(RuntimeError, match="fp8 compute needs"):
        tiny_pipeline(fp8_compute=True)


@pytest.mark.skipif(not GPU_FP8, reason="GPU-only: torchao's fp8 matmul needs compute capability 8.9+ (Ada, Hopper)")
def test_fp8_compute_stays_close_to_dequantised_fp8():
    from avatarbot.avatar.hunyuan import fp8, speed

    device = torch.device("cuda")
    sizes = dict(num_attention_heads=4, attention_head_dim=64, rope_axes_dim=(16, 24, 24), text_embed_dim=64)
    model = tiny_model(**sizes).to(device, torch.bfloat16)
    fp8.quantize_model_(model)
    x = model_inputs(width=8)
    x["encoder_hidden_states"] = torch.randn(1, 9, 64)
    x = {k: v.to(device) if torch.is_tensor(v) else v for k, v in x.items()}
    x = {k: v.to(torch.bfloat16) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in x.items()}
    with torch.no_grad():
        reference = model(**x).sample.float()
        speed.enable_fp8_compute(model, device)
        out = model(**x).sample.float()
    relative = ((out - reference).norm() / reference.norm()).item()
    print(f"fp8 compute vs dequantised fp8: relative error {relative:.4f}")
    assert relative < 0.1


# --- compile -----------------------------------------------------------------------------------
def _has_compiler() -> bool:
    import shutil

    return shutil.which(os.environ.get("CXX", "g++")) is not None


@pytest.mark.skipif(not _has_compiler(), reason="inductor needs a C++ compiler on the CPU")
def test_compiled_blocks_equal_eager_ones_across_text_lengths(tmp_path):
    from avatarbot.avatar.hunyuan import speed

    eager = tiny_model()
    compiled = tiny_model()
    speed.compile_blocks(compiled, cache_dir=str(tmp_path / "inductor"))
    with torch.no_grad():
        for rows in (9, 12):
            x = model_inputs(rows=rows)
            torch.testing.assert_close(compiled(**x).sample, eager(**x).sample, rtol=0, atol=1e-5)


# --- context parallel --------------------------------------------------------------------------
def parallel_pipeline(rank, device, _arg=""):
    """Each rank's pipeline in the context-parallel test (the follower factory)."""
    return tiny_pipeline(latent_window=5, context_parallel="ulysses")


class Cancelled(Exception):
    pass


def rank0_main(out: str) -> None:
    """Rank 0 of the test: start rank 1 through the worker's own launcher, render, cancel one
    render at step 3, render again, stop the group; save what rank 0 got."""
    from avatarbot.avatar.hunyuan import parallel

    group = parallel.start_group(2, "", factory="test_hunyuan_speed:parallel_pipeline", backend="gloo")
    pipe = parallel.ParallelPipeline(parallel_pipeline(0, group.device), group)
    kwargs = dict(image=_photo().rgb, audio=_speech(1.0).samples, **RENDER)
    first = render_latents(pipe, pipe.pipeline, **kwargs)

    def cancel(done, total):
        if done == 3:
            raise Cancelled

    stopped_at = None
    try:
        pipe(callback=cancel, **kwargs)
    except Cancelled:
        stopped_at = 3
    again = render_latents(pipe, pipe.pipeline, **kwargs)
    parallel.stop_group(group)
    codes = [p.returncode for p in group.followers]
    np.savez(out, latents=first[0].numpy(), frames=first[1], again=again[0].numpy(), stopped_at=stopped_at, codes=codes)


def test_two_processes_on_gloo_render_what_one_process_renders(tmp_path):
    out = tmp_path / "rank0.npz"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)])}
    done = subprocess.run(
        [sys.executable, str(Path(__file__)), "rank0", str(out)], env=env, timeout=600, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = np.load(out)
    single, single_frames = render_latents(
        tiny_pipeline(latent_window=5), image=_photo().rgb, audio=_speech(1.0).samples, **RENDER
    )
    assert int(got["stopped_at"]) == 3
    assert list(got["codes"]) == [0]  # the follower left cleanly
    torch.testing.assert_close(torch.from_numpy(got["latents"]), single, rtol=0, atol=PARALLEL_ATOL)
    torch.testing.assert_close(torch.from_numpy(got["again"]), single, rtol=0, atol=PARALLEL_ATOL)
    assert np.abs(got["frames"].astype(int) - single_frames.astype(int)).max() <= 1


# --- avatarbot worker --gpus -------------------------------------------------------------------
def test_worker_gpus_option_makes_renders_span_the_listed_gpus(monkeypatch):
    from avatarbot.cli import _build_parser
    from avatarbot.settings import Settings
    from avatarbot.tasks.worker import _span_gpus

    args = _build_parser().parse_args(["worker", "--gpus", "2,3"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    settings = Settings()
    _span_gpus(settings, args.gpus, args.concurrency)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert settings.hunyuan.gpus_per_render == 2
    for bad, why in (("0,x", "distinct GPU indices"), ("1,1", "distinct GPU indices"), ("", "distinct")):
        with pytest.raises(SystemExit, match=why):
            _span_gpus(Settings(), bad or ",", 1)
    with pytest.raises(SystemExit, match="--concurrency 1"):
        _span_gpus(Settings(), "0,1", 2)


# --- the worker's path: the engine from converted weights, two ranks -------------------------
ENGINE_PROMPT = "A person talking"


def converted_weights(tmp_path):
    from test_hunyuan_convert import CONFIG
    from test_hunyuan_e2e import synthetic_release

    from avatarbot.avatar.hunyuan.convert import run_convert

    release = synthetic_release(tmp_path / "weights")
    config_file = tmp_path / "tiny-transformer.json"
    config_file.write_text(json.dumps(CONFIG))
    assert run_convert(release, tmp_path / "converted", fp8=False, transformer_config=config_file) == 0
    return tmp_path / "converted"


def engine_frames(weights, gpus_per_render: int, **settings):
    from test_hunyuan_pipeline import TINY_SIZES

    from avatarbot.avatar.engine import RenderOptions
    from avatarbot.avatar.hunyuan.engine import HunyuanEngine
    from avatarbot.media.types import Photo
    from avatarbot.settings import HunyuanSettings

    hunyuan = HunyuanSettings(weights_dir=weights, num_inference_steps=10, gpus_per_render=gpus_per_render, **settings)
    engine = HunyuanEngine.from_settings(hunyuan, device="cpu")
    engine.quality_short_side = TINY_SIZES
    rgb = np.random.default_rng(2).integers(0, 255, size=(64, 80, 3), dtype=np.uint8)
    seen = []
    options = RenderOptions(quality="fast", seed=3, prompt=ENGINE_PROMPT)
    clip = engine.render(Photo(rgb=rgb, faces=(), main_face=None), _speech(1.0), options, progress=seen.append)
    frames = np.stack(list(clip.frames))
    if gpus_per_render > 1:
        from avatarbot.avatar.hunyuan import parallel

        parallel.stop_group(engine.pipeline.group)
    assert [p.step for p in seen if p.stage == "rendering"] == list(range(1, 11))
    return frames


def engine_rank0_main(weights: str, out: str) -> None:
    np.save(out, engine_frames(Path(weights), 2))


def test_engine_with_two_gpus_per_render_renders_what_one_gpu_renders(tmp_path):
    """`avatarbot worker --gpus 0,1` minus Celery: HunyuanEngine.from_settings with
    gpus_per_render = 2 starts a follower with the worker's own launcher and settings, loads the
    converted weights on both ranks and renders through the lockstep (gloo, Ulysses, bf16 weights,
    575 text rows: an uneven split), with progress reported for every step."""
    weights = converted_weights(tmp_path)
    out = tmp_path / "engine.npy"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)])}
    done = subprocess.run(
        [sys.executable, str(Path(__file__)), "engine-rank0", str(weights), str(out)],
        env=env, timeout=600, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    two = np.load(out)
    one = engine_frames(weights, 1)
    batched = engine_frames(weights, 1, cfg_batch=True)
    noise = np.abs(batched.astype(int) - one.astype(int))
    print(f"bf16 noise (batched vs separate, one rank): max {noise.max()} levels, mean {noise.mean():.3f}")
    assert two.shape == one.shape == (25, 64, 64, 3)
    difference = np.abs(two.astype(int) - one.astype(int))
    print(f"2 ranks vs 1: max {difference.max()} levels, mean {difference.mean():.3f}")
    # Converted weights are bf16, so rank count and batching both move the rounding: measured
    # mean 0.38 / max 4-6 levels for 2 ranks vs 1, mean 0.36 / max 4 for batched vs separate
    # branches on one rank. The exact comparison is the fp32 one above; this one proves the path.
    assert difference.mean() <= 2 * noise.mean() + 0.1
    assert difference.max() <= 10


if __name__ == "__main__" and sys.argv[1:2] == ["rank0"]:
    rank0_main(sys.argv[2])
if __name__ == "__main__" and sys.argv[1:2] == ["engine-rank0"]:
    engine_rank0_main(sys.argv[2], sys.argv[3])
