"""How the transformer runs fast: attention backend, fp8 compute and torch.compile.

Each is a `[hunyuan]` setting and the same-named keyword of HunyuanVideoAvatarPipeline; none
changes what the model computes beyond the numerics stated with it (README, "Speed modes").
The work itself is done by libraries: diffusers' attention dispatcher, torchao's float8
configs, torch.compile. This module only chooses and checks.
"""

from __future__ import annotations

import logging
import os

import torch
from torch import nn

from avatarbot.avatar.hunyuan import fp8

log = logging.getLogger(__name__)

# The `attention` setting -> diffusers' attention backend (diffusers.models.attention_dispatch).
# Only kernels that ship inside torch or in an installed package: nothing is built or downloaded
# at run time (diffusers' *_hub backends, which fetch kernels from the Hub, are left out).
ATTENTION_BACKENDS = {
    "sdpa": "native",  # torch's scaled_dot_product_attention; torch picks the kernel
    "flash": "_native_flash",  # torch's built-in FlashAttention-2 kernel (no mask)
    "cudnn": "_native_cudnn",  # cuDNN attention (Hopper's fastest in torch)
    "efficient": "_native_efficient",  # torch's memory-efficient kernel (takes a mask)
    "flash-attn": "flash",  # the flash-attn package (>= 2.6.3; PyPI ships it as source only)
    "sage": "sage",  # SageAttention >= 2.1.1 (PyPI's newest is 1.0.6, too old for diffusers)
}
# Backends that take no attention mask: both guidance branches in one batch need one whenever
# the two prompts count different rows.
MASKLESS_ATTENTION = {"flash", "flash-attn", "sage"}
# Backends diffusers can run context parallelism through (Ulysses for all; ring needs the
# softmax statistics, which torch's plain SDPA does not return, so not "sdpa").
RING_ATTENTION = {"flash", "cudnn", "flash-attn", "sage"}
FP8_COMPUTE_CAPABILITY = (8, 9)  # Ada; Hopper is (9, 0)


def check_modes(cfg_batch: bool, attention: str, context_parallel: str) -> None:
    """Refuse the speed modes that do not combine, before anything is loaded or any GPU process
    started (the engine checks here before it spawns the ranks of `worker --gpus`)."""
    if cfg_batch and attention in MASKLESS_ATTENTION:
        raise ValueError(
            f"cfg_batch needs an attention kernel that takes a mask (the two prompts count different "
            f"rows); {attention!r} takes none: use sdpa, cudnn or efficient, or cfg_batch = false"
        )
    if cfg_batch and context_parallel != "none":
        raise ValueError("cfg_batch and context_parallel do not combine: context parallelism takes no text mask")
    if context_parallel == "ring" and attention not in RING_ATTENTION:
        raise ValueError(f"ring attention needs hunyuan.attention in {sorted(RING_ATTENTION)}, not {attention!r}")


def set_attention(transformer: nn.Module, attention: str) -> None:
    """Route the joint blocks' attention through the chosen kernel. The token refiner and the
    audio adapters keep plain SDPA: they are masked and small."""
    if attention not in ATTENTION_BACKENDS:
        raise ValueError(f"hunyuan.attention must be one of {sorted(ATTENTION_BACKENDS)}, not {attention!r}")
    transformer.set_attention_backend(ATTENTION_BACKENDS[attention])  # checks the package is there


def fp8_compute_available(device: torch.device) -> str | None:
    """None when this device can multiply in fp8, else why not (for a clear refusal)."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return "fp8 compute needs a CUDA GPU with fp8 matmul (Ada, Hopper or newer)"
    capability = torch.cuda.get_device_capability(device)
    if capability < FP8_COMPUTE_CAPABILITY:
        return f"fp8 compute needs compute capability 8.9+ (Ada, Hopper); this GPU has {capability[0]}.{capability[1]}"
    try:
        import torchao  # noqa: F401
    except ImportError:
        return "fp8 compute needs torchao (pip install torchao)"
    return None


def enable_fp8_compute(transformer: nn.Module, device: torch.device) -> None:
    """Dynamic fp8 activations x fp8 weights for the blocks' linear layers, through torchao's
    Float8DynamicActivationFloat8WeightConfig: per-row scales on Hopper and newer, one scale per
    tensor on Ada (whose fp8 matmul has no row-wise scaling). Weights stored in fp8 by our own
    Fp8Linear (upstream's fp8 checkpoint) are dequantised one block at a time and handed to
    torchao, so the peak memory grows by one block, not by the model. Our Fp8Linear stays for
    what torchao does not do: loading upstream's fp8 checkpoint with its per-layer scales, and
    fp8 storage on GPUs without fp8 matmul."""
    problem = fp8_compute_available(device)
    if problem:
        raise RuntimeError(problem)
    from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, PerTensor, quantize_

    granularity = PerRow() if torch.cuda.get_device_capability(device) >= (9, 0) else PerTensor()
    config = Float8DynamicActivationFloat8WeightConfig(granularity=granularity)
    blocks = [*transformer.transformer_blocks, *transformer.single_transformer_blocks]
    for block in blocks:  # on the GPU, one block at a time, then back where it lived (block offload)
        home = next(block.parameters()).device
        block.to(device)
        fp8.dequantize_block_(block)
        quantize_(block, config, filter_fn=lambda module, _name: isinstance(module, nn.Linear))
        block.to(home)
    log.info("fp8 compute: %d blocks' linear layers through torchao (%s)", len(blocks), type(granularity).__name__)


def compile_blocks(transformer: nn.Module, cache_dir: str | None = None) -> None:
    """torch.compile each repeated block (diffusers' `compile_repeated_blocks`: one graph serves
    all 20 double or 40 single blocks, so cold start is two compilations, not sixty).

    Between renders in one process the compiled graphs are reused while shapes repeat; a new
    text length or size bucket recompiles once, after which torch marks the changing sizes
    dynamic. Between processes inductor's on-disk caches (FX graphs, autotuning) serve the same
    shapes again: `cache_dir` moves them from /tmp to a directory that outlives reboots."""
    if cache_dir:
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir))
        os.makedirs(os.environ["TORCHINDUCTOR_CACHE_DIR"], exist_ok=True)
    transformer.compile_repeated_blocks(fullgraph=False)
