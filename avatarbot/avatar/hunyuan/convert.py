"""Official HunyuanVideo-Avatar checkpoints -> our safetensors layout, strictly.

Upstream loads its pickle with `strict=False`, so a renamed or missing tensor silently stays
random. We convert once and refuse anything that does not line up: every official key must map
to one of ours, every one of ours must be filled, and every shape must match the model built
from the config. Problems are collected and reported together, readably.

Official layout (the `ckpts/` directory of the release):
    hunyuan-video-t2v-720p/transformers/mp_rank_00_model_states.pt      {"module": state dict}
    hunyuan-video-t2v-720p/transformers/mp_rank_00_model_states_fp8.pt  (same keys; block linears in fp8)
    hunyuan-video-t2v-720p/transformers/mp_rank_00_model_states_fp8_map.pt {"module": {layer: scale}}
    hunyuan-video-t2v-720p/vae/pytorch_model.pt + config.json
    llava_llama_image/  text_encoder_2/  whisper-tiny/  det_align/detface.pt

Ours (what `weights.load_components` reads) is described in the `weights` module docstring. The
VAE's diffusers config and its runtime settings (tiles, mid-block attention) are built from the
official vae/config.json; a field we cannot honour exactly stops the conversion.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from avatarbot.avatar.hunyuan import weights as layout
from avatarbot.avatar.hunyuan.model import adapter_layers

log = logging.getLogger(__name__)

OFFICIAL_TRANSFORMER_DIR = Path("hunyuan-video-t2v-720p/transformers")
OFFICIAL_BF16_FILE = "mp_rank_00_model_states.pt"
OFFICIAL_FP8_FILE = "mp_rank_00_model_states_fp8.pt"
OFFICIAL_FP8_MAP_FILE = "mp_rank_00_model_states_fp8_map.pt"
OFFICIAL_VAE_DIR = Path("hunyuan-video-t2v-720p/vae")
OFFICIAL_STATE_KEY = "module"
# Official component folders copied as they are (they are already Hugging Face layouts).
OFFICIAL_COPIED_DIRS = {
    "llava_llama_image": layout.TEXT_ENCODER_DIR,
    "text_encoder_2": layout.TEXT_ENCODER_2_DIR,
    "whisper-tiny": layout.WHISPER_DIR,
    "det_align": layout.FACE_DETECTOR_DIR,
}
OPTIONAL_DIRS = {"det_align"}  # we find faces with avatarbot.media; copied when present
SHARD_BYTES = 5 * 1024**3
REPORT_LINES_PER_KIND = 20
FP8_SCALE_SUFFIX = ".weight_scale"


class ConversionError(Exception):
    """The checkpoint does not match the model; `problems` says how, one line each."""

    def __init__(self, what: str, problems: list[str]):
        self.problems = problems
        super().__init__(f"{what}: {len(problems)} problem(s)\n" + "\n".join(f"  - {p}" for p in problems))


# --- key mapping ---------------------------------------------------------------------------------
@dataclass
class _Rule:
    pattern: re.Pattern
    targets: Callable[[re.Match], list[str]]
    split: Callable[[torch.Tensor, int], list[torch.Tensor]] | None = None


def _rename(template: str) -> Callable[[re.Match], list[str]]:
    return lambda m: [m.expand(template)]


def _qkv(prefix: str, names: tuple[str, str, str]) -> Callable[[re.Match], list[str]]:
    return lambda m: [m.expand(prefix) + f".{name}.{m.group('param')}" for name in names]


def _split_thirds(tensor: torch.Tensor, hidden: int) -> list[torch.Tensor]:
    if tensor.shape[0] != 3 * hidden:
        raise ValueError(f"fused q/k/v has {tensor.shape[0]} rows, expected 3 x {hidden}")
    return list(tensor.split(hidden, dim=0))


def _split_linear1(tensor: torch.Tensor, hidden: int) -> list[torch.Tensor]:
    if tensor.shape[0] <= 3 * hidden:
        raise ValueError(f"linear1 has {tensor.shape[0]} rows, expected 3 x {hidden} + mlp")
    return list(tensor.split([hidden, hidden, hidden, tensor.shape[0] - 3 * hidden], dim=0))


def _swap_shift_scale(tensor: torch.Tensor, hidden: int) -> list[torch.Tensor]:
    """Upstream's final modulation emits (shift, scale); diffusers' AdaLayerNormContinuous reads
    (scale, shift)."""
    shift, scale = tensor.chunk(2, dim=0)
    return [torch.cat([scale, shift], dim=0)]


_P = r"(?P<param>weight|bias)"
_REFINER = r"txt_in\.individual_token_refiner\.blocks\.(?P<n>\d+)"
_OUR_REFINER = r"context_embedder.token_refiner.refiner_blocks.\g<n>"
_DOUBLE = r"double_blocks\.(?P<n>\d+)"
_OUR_DOUBLE = r"transformer_blocks.\g<n>"
_SINGLE = r"single_blocks\.(?P<n>\d+)"
_OUR_SINGLE = r"single_transformer_blocks.\g<n>"

RULES: list[_Rule] = [
    _Rule(re.compile(rf"img_in\.proj\.{_P}"), _rename(r"x_embedder.proj.\g<param>")),
    _Rule(re.compile(rf"ref_in\.proj\.{_P}"), _rename(r"ref_embedder.proj.\g<param>")),
    _Rule(re.compile(rf"before_proj\.{_P}"), _rename(r"ref_proj.\g<param>")),
    # text: token refiner
    _Rule(re.compile(rf"txt_in\.input_embedder\.{_P}"), _rename(r"context_embedder.proj_in.\g<param>")),
    _Rule(
        re.compile(rf"txt_in\.t_embedder\.mlp\.(?P<i>[02])\.{_P}"),
        lambda m: [
            f"context_embedder.time_text_embed.timestep_embedder.linear_{1 if m['i'] == '0' else 2}.{m['param']}"
        ],
    ),
    _Rule(
        re.compile(rf"txt_in\.c_embedder\.linear_(?P<i>[12])\.{_P}"),
        _rename(r"context_embedder.time_text_embed.text_embedder.linear_\g<i>.\g<param>"),
    ),
    _Rule(re.compile(rf"{_REFINER}\.norm(?P<i>[12])\.{_P}"), _rename(rf"{_OUR_REFINER}.norm\g<i>.\g<param>")),
    _Rule(
        re.compile(rf"{_REFINER}\.self_attn_qkv\.{_P}"),
        _qkv(_OUR_REFINER + ".attn", ("to_q", "to_k", "to_v")),
        _split_thirds,
    ),
    _Rule(re.compile(rf"{_REFINER}\.self_attn_proj\.{_P}"), _rename(rf"{_OUR_REFINER}.attn.to_out.0.\g<param>")),
    _Rule(re.compile(rf"{_REFINER}\.mlp\.fc1\.{_P}"), _rename(rf"{_OUR_REFINER}.ff.net.0.proj.\g<param>")),
    _Rule(re.compile(rf"{_REFINER}\.mlp\.fc2\.{_P}"), _rename(rf"{_OUR_REFINER}.ff.net.2.\g<param>")),
    _Rule(re.compile(rf"{_REFINER}\.adaLN_modulation\.1\.{_P}"), _rename(rf"{_OUR_REFINER}.norm_out.linear.\g<param>")),
    # timestep, pooled text, motion, fps
    _Rule(
        re.compile(rf"time_in\.mlp\.(?P<i>[02])\.{_P}"),
        lambda m: [f"time_text_embed.timestep_embedder.linear_{1 if m['i'] == '0' else 2}.{m['param']}"],
    ),
    _Rule(
        re.compile(rf"vector_in\.(?P<l>in|out)_layer\.{_P}"),
        lambda m: [f"time_text_embed.text_embedder.linear_{1 if m['l'] == 'in' else 2}.{m['param']}"],
    ),
    _Rule(
        re.compile(rf"(?P<name>motion_exp|motion_pose|fps_proj)\.mlp\.(?P<i>[02])\.{_P}"),
        lambda m: [
            f"{'fps' if m['name'] == 'fps_proj' else m['name']}_embedder.linear_{1 if m['i'] == '0' else 2}.{m['param']}"
        ],
    ),
    # audio
    _Rule(re.compile(rf"audio_proj\.(?P<l>proj[123]|norm)\.{_P}"), _rename(r"audio_proj.\g<l>.\g<param>")),
    _Rule(
        re.compile(rf"audio_adapter_blocks\.(?P<n>\d+)\.norm(?P<i>[12])\.{_P}"),
        lambda m: [f"audio_adapters.{m['n']}.{'norm_audio' if m['i'] == '1' else 'norm_video'}.{m['param']}"],
    ),
    _Rule(
        re.compile(r"audio_adapter_blocks\.(?P<n>\d+)\.(?P<l>to_q|to_kv|to_out)\.(?P<param>weight)"),
        _rename(r"audio_adapters.\g<n>.\g<l>.\g<param>"),
    ),
    # double-stream blocks
    _Rule(re.compile(rf"{_DOUBLE}\.img_mod\.linear\.{_P}"), _rename(rf"{_OUR_DOUBLE}.norm1.linear.\g<param>")),
    _Rule(re.compile(rf"{_DOUBLE}\.txt_mod\.linear\.{_P}"), _rename(rf"{_OUR_DOUBLE}.norm1_context.linear.\g<param>")),
    _Rule(
        re.compile(rf"{_DOUBLE}\.img_attn_qkv\.{_P}"),
        _qkv(_OUR_DOUBLE + ".attn", ("to_q", "to_k", "to_v")),
        _split_thirds,
    ),
    _Rule(
        re.compile(rf"{_DOUBLE}\.txt_attn_qkv\.{_P}"),
        _qkv(_OUR_DOUBLE + ".attn", ("add_q_proj", "add_k_proj", "add_v_proj")),
        _split_thirds,
    ),
    _Rule(re.compile(rf"{_DOUBLE}\.img_attn_q_norm\.weight"), _rename(rf"{_OUR_DOUBLE}.attn.norm_q.weight")),
    _Rule(re.compile(rf"{_DOUBLE}\.img_attn_k_norm\.weight"), _rename(rf"{_OUR_DOUBLE}.attn.norm_k.weight")),
    _Rule(re.compile(rf"{_DOUBLE}\.txt_attn_q_norm\.weight"), _rename(rf"{_OUR_DOUBLE}.attn.norm_added_q.weight")),
    _Rule(re.compile(rf"{_DOUBLE}\.txt_attn_k_norm\.weight"), _rename(rf"{_OUR_DOUBLE}.attn.norm_added_k.weight")),
    _Rule(re.compile(rf"{_DOUBLE}\.img_attn_proj\.{_P}"), _rename(rf"{_OUR_DOUBLE}.attn.to_out.0.\g<param>")),
    _Rule(re.compile(rf"{_DOUBLE}\.txt_attn_proj\.{_P}"), _rename(rf"{_OUR_DOUBLE}.attn.to_add_out.\g<param>")),
    _Rule(re.compile(rf"{_DOUBLE}\.img_mlp\.fc1\.{_P}"), _rename(rf"{_OUR_DOUBLE}.ff.net.0.proj.\g<param>")),
    _Rule(re.compile(rf"{_DOUBLE}\.img_mlp\.fc2\.{_P}"), _rename(rf"{_OUR_DOUBLE}.ff.net.2.\g<param>")),
    _Rule(re.compile(rf"{_DOUBLE}\.txt_mlp\.fc1\.{_P}"), _rename(rf"{_OUR_DOUBLE}.ff_context.net.0.proj.\g<param>")),
    _Rule(re.compile(rf"{_DOUBLE}\.txt_mlp\.fc2\.{_P}"), _rename(rf"{_OUR_DOUBLE}.ff_context.net.2.\g<param>")),
    # single-stream blocks
    _Rule(
        re.compile(rf"{_SINGLE}\.linear1\.{_P}"),
        lambda m: [
            f"single_transformer_blocks.{m['n']}.{name}.{m['param']}"
            for name in ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")
        ],
        _split_linear1,
    ),
    _Rule(re.compile(rf"{_SINGLE}\.linear2\.{_P}"), _rename(rf"{_OUR_SINGLE}.proj_out.\g<param>")),
    _Rule(re.compile(rf"{_SINGLE}\.q_norm\.weight"), _rename(rf"{_OUR_SINGLE}.attn.norm_q.weight")),
    _Rule(re.compile(rf"{_SINGLE}\.k_norm\.weight"), _rename(rf"{_OUR_SINGLE}.attn.norm_k.weight")),
    _Rule(re.compile(rf"{_SINGLE}\.modulation\.linear\.{_P}"), _rename(rf"{_OUR_SINGLE}.norm.linear.\g<param>")),
    # output
    _Rule(re.compile(rf"final_layer\.linear\.{_P}"), _rename(r"proj_out.\g<param>")),
    _Rule(
        re.compile(rf"final_layer\.adaLN_modulation\.1\.{_P}"), _rename(r"norm_out.linear.\g<param>"), _swap_shift_scale
    ),
]


def map_official_key(key: str) -> tuple[_Rule, re.Match] | None:
    for rule in RULES:
        match = rule.pattern.fullmatch(key)
        if match:
            return rule, match
    return None


def _limited(kind: str, items: list[str]) -> list[str]:
    lines = [f"{kind}: {item}" for item in items[:REPORT_LINES_PER_KIND]]
    if len(items) > REPORT_LINES_PER_KIND:
        lines.append(f"{kind}: ... and {len(items) - REPORT_LINES_PER_KIND} more")
    return lines


# Upstream always builds one audio adapter per entry of this list, whatever the depth
# (hymm_sp/modules/models_audio.py `double_stream_list`); adapter j follows double block [j].
UPSTREAM_ADAPTER_LAYERS = adapter_layers(20)
_ADAPTER_KEY = re.compile(r"audio_adapter_blocks\.(?P<j>\d+)\.(?P<rest>.+)")


def select_adapters(official: dict, layers: tuple[int, ...]) -> dict:
    """The official state dict with its audio adapters renumbered for a model whose adapters follow
    double blocks `layers`; adapters after blocks the model lacks (a reduced-depth checkpoint:
    upstream builds all ten, a 2-block model calls one) are dropped with a log line. Adapters
    beyond upstream's list are left for the strict check to report."""
    ours = {layer: index for index, layer in enumerate(layers)}
    kept, dropped = {}, set()
    for key, tensor in official.items():
        match = _ADAPTER_KEY.fullmatch(key)
        if match is None or int(match["j"]) >= len(UPSTREAM_ADAPTER_LAYERS):
            kept[key] = tensor
            continue
        layer = UPSTREAM_ADAPTER_LAYERS[int(match["j"])]
        if layer in ours:
            kept[f"audio_adapter_blocks.{ours[layer]}.{match['rest']}"] = tensor
        else:
            dropped.add(layer)
    if dropped:
        log.info(
            "dropping the official audio adapters after double blocks %s: this model's forward never calls them",
            ", ".join(map(str, sorted(dropped))),
        )
    return kept


def convert_transformer_state_dict(
    official: dict[str, torch.Tensor],
    expected_shapes: dict[str, tuple[int, ...]],
    hidden_size: int,
    fp8_scales: dict[str, torch.Tensor] | None = None,
    adapter_layers: tuple[int, ...] | None = None,
) -> dict[str, torch.Tensor]:
    """Map an official transformer state dict onto our names.

    `expected_shapes` is our model's state dict shapes (from `model_shapes`). With `fp8_scales`
    (the official map: layer name -> scale), fp8 weights keep their dtype and gain a
    `<layer>.weight_scale` entry (shared by the pieces of a fused q/k/v); every fp8 weight needs a
    scale and every scale a weight. `adapter_layers`: the double blocks our model's audio adapters
    follow (see `select_adapters`); None takes the official adapters as they are numbered.
    Raises ConversionError listing every problem.
    """
    if adapter_layers is not None:
        official = select_adapters(official, adapter_layers)
    unmapped, duplicated, bad_split = [], [], []
    converted: dict[str, torch.Tensor] = {}
    used_scales: set[str] = set()
    scales_needed: list[str] = []
    for key, tensor in official.items():
        found = map_official_key(key)
        if found is None:
            unmapped.append(key)
            continue
        rule, match = found
        targets = rule.targets(match)
        pieces = [tensor]
        if rule.split is not None:
            try:
                pieces = rule.split(tensor, hidden_size)
            except ValueError as exc:
                bad_split.append(f"{key} {tuple(tensor.shape)}: {exc}")
                continue
        layer = key.rsplit(".", 1)[0]
        # A weight listed in the scale map holds values already divided by its scale (upstream
        # multiplies them back at run time), whichever dtype the file stored them in.
        listed = fp8_scales is not None and layer in fp8_scales and key.endswith(".weight")
        is_fp8 = tensor.dtype == torch.float8_e4m3fn or listed
        if is_fp8 and tensor.dtype != torch.float8_e4m3fn:
            pieces = [piece.to(torch.float8_e4m3fn) for piece in pieces]
        scale = None
        if is_fp8:
            if fp8_scales is None or layer not in fp8_scales:
                scales_needed.append(layer)
                continue
            scale = fp8_scales[layer].detach().to(torch.float32).reshape(())
            used_scales.add(layer)
        for target, piece in zip(targets, pieces, strict=True):
            if target in converted:
                duplicated.append(target)
            converted[target] = piece.contiguous()
            if scale is not None:
                converted[target.rsplit(".", 1)[0] + FP8_SCALE_SUFFIX] = scale.clone()

    problems = _limited("official key with no place in our model", sorted(unmapped))
    problems += _limited("two official keys map to", sorted(duplicated))
    problems += _limited("cannot split", bad_split)
    problems += _limited("fp8 weight without a scale in the map", sorted(scales_needed))
    if fp8_scales is not None:
        problems += _limited("scale in the fp8 map with no fp8 weight", sorted(set(fp8_scales) - used_scales))

    weights = {k: v for k, v in converted.items() if not k.endswith(FP8_SCALE_SUFFIX)}
    problems += _limited(
        "missing (our model needs it, the checkpoint lacks it)", sorted(set(expected_shapes) - set(weights))
    )
    problems += _limited("left over (mapped to a name our model lacks)", sorted(set(weights) - set(expected_shapes)))
    wrong = [
        f"{k}: checkpoint {tuple(v.shape)}, model {tuple(expected_shapes[k])}"
        for k, v in sorted(weights.items())
        if k in expected_shapes and tuple(v.shape) != tuple(expected_shapes[k])
    ]
    problems += _limited("wrong shape", wrong)
    if problems:
        raise ConversionError("transformer checkpoint does not match the model", problems)
    return converted


def model_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """Our transformer's parameter shapes for `config`, computed on the meta device (no memory)."""
    from avatarbot.avatar.hunyuan.model import HunyuanAvatarTransformer3DModel

    with torch.device("meta"):
        model = HunyuanAvatarTransformer3DModel.from_config(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def vae_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    from diffusers import AutoencoderKLHunyuanVideo

    with torch.device("meta"):
        vae = AutoencoderKLHunyuanVideo.from_config(config)
    return {k: tuple(v.shape) for k, v in vae.state_dict().items()}


# --- the VAE's config ----------------------------------------------------------------------------
# Upstream builds AutoencoderKLCausal3D with `from_config(vae/config.json)`, so a field the file
# lacks takes the class default (hymm_sp/vae/autoencoder_kl_causal_3d.py). These are those defaults.
UPSTREAM_VAE_DEFAULTS = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlockCausal3D"],
    "up_block_types": ["UpDecoderBlockCausal3D"],
    "block_out_channels": [64],
    "layers_per_block": 1,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 32,
    "sample_tsize": 64,
    "scaling_factor": 0.18215,
    "spatial_compression_ratio": 8,
    "time_compression_ratio": 4,
    "disable_causal_conv": False,
    "mid_block_add_attention": True,
    "mid_block_causal_attn": False,
}
UPSTREAM_VAE_CLASS = "AutoencoderKLCausal3D"
# Fields that never change what upstream computes: file metadata, `force_upcast` (upstream runs the
# VAE at --vae-precision and never reads it) and the TensorRT / multi-GPU decoding switches
# (`use_trt_engine` is forced off in the constructor).
VAE_FIELDS_WITHOUT_EFFECT = {
    "_class_name",
    "_diffusers_version",
    "_name_or_path",
    "force_upcast",
    "use_trt_engine",
    "nccl_gather",
    "engine_path",
}
# Same fields, same meaning, same name in diffusers' AutoencoderKLHunyuanVideo.
VAE_FIELDS_AS_THEY_ARE = (
    "in_channels",
    "out_channels",
    "latent_channels",
    "block_out_channels",
    "layers_per_block",
    "act_fn",
    "norm_num_groups",
    "scaling_factor",
    "spatial_compression_ratio",
    "mid_block_add_attention",
)
VAE_BLOCK_TYPES = {
    "DownEncoderBlockCausal3D": "HunyuanVideoDownBlock3D",
    "UpDecoderBlockCausal3D": "HunyuanVideoUpBlock3D",
}


def _tile_rules_agree(official: dict) -> list[str]:
    """Upstream sizes its tiles from `sample_size` / `sample_tsize` with 1/4 overlap; diffusers from
    a tile size and a stride. The two agree when these integer roundings do (they do for 256/64)."""
    size, frames = official["sample_size"], official["sample_tsize"]
    space, time = official["spatial_compression_ratio"], official["time_compression_ratio"]
    if not isinstance(size, int) or not isinstance(frames, int) or size <= 0 or frames <= 0:
        return [f"sample_size {size!r} / sample_tsize {frames!r}: need positive integers"]
    from avatarbot.avatar.hunyuan.vae import TILE_OVERLAP

    keep = 1 - TILE_OVERLAP
    latent = int(size / 2 ** (len(official["block_out_channels"]) - 1))
    latent_t = frames // time
    stride, stride_t = int(size * keep), int(frames * keep)
    pairs = {
        "spatial latent tile": (latent, size // space),
        "spatial latent stride": (int(latent * keep), stride // space),
        "spatial encode blend": (int(latent * TILE_OVERLAP), size // space - stride // space),
        "spatial decode blend": (int(size * TILE_OVERLAP), size - stride),
        "temporal latent stride": (int(latent_t * keep), stride_t // time),
        "temporal encode blend": (int(latent_t * TILE_OVERLAP), latent_t - stride_t // time),
        "temporal decode blend": (int(frames * TILE_OVERLAP), frames - stride_t),
    }
    return [
        f"tiles of sample_size {size} / sample_tsize {frames}: upstream's {what} is {a}, diffusers' would be {b}"
        for what, (a, b) in pairs.items()
        if a != b
    ]


def vae_config_from_official(official: dict):
    """(diffusers config, VaeRuntime) for an official `vae/config.json`. Raises ConversionError
    listing every field we cannot honour exactly, so a VAE never runs with settings other than
    upstream's."""
    from avatarbot.avatar.hunyuan.vae import VaeRuntime

    problems = []
    if official.get("_class_name", UPSTREAM_VAE_CLASS) != UPSTREAM_VAE_CLASS:
        problems.append(f"_class_name {official['_class_name']!r}: expected {UPSTREAM_VAE_CLASS}")
    unknown = sorted(set(official) - set(UPSTREAM_VAE_DEFAULTS) - VAE_FIELDS_WITHOUT_EFFECT)
    problems += [f"{name}: not a field of upstream's {UPSTREAM_VAE_CLASS}; refusing to guess" for name in unknown]
    defaulted = sorted(set(UPSTREAM_VAE_DEFAULTS) - set(official))
    if defaulted:
        log.info("official VAE config lacks %s: upstream's class defaults apply", ", ".join(defaulted))
    merged = {**UPSTREAM_VAE_DEFAULTS, **official}
    if merged["disable_causal_conv"]:
        problems.append("disable_causal_conv true: diffusers' VAE has causal convolutions only")
    if merged["time_compression_ratio"] != 4:
        problems.append(f"time_compression_ratio {merged['time_compression_ratio']}: diffusers' decoder takes 4 only")
    blocks = len(merged["block_out_channels"])
    for field in ("down_block_types", "up_block_types"):
        types = list(merged[field])
        if len(types) != blocks or any(t not in VAE_BLOCK_TYPES for t in types):
            problems.append(f"{field} {types}: expected {blocks} of {'/'.join(VAE_BLOCK_TYPES)}")
    if not problems:
        problems += _tile_rules_agree(merged)
    if problems:
        raise ConversionError("official VAE config cannot be honoured", problems)
    config = {name: merged[name] for name in VAE_FIELDS_AS_THEY_ARE}
    config["block_out_channels"] = list(config["block_out_channels"])
    config["temporal_compression_ratio"] = merged["time_compression_ratio"]
    config["down_block_types"] = [VAE_BLOCK_TYPES[t] for t in merged["down_block_types"]]
    config["up_block_types"] = [VAE_BLOCK_TYPES[t] for t in merged["up_block_types"]]
    runtime = VaeRuntime(
        mid_block_causal_attn=bool(merged["mid_block_causal_attn"]),
        tile_sample_size=merged["sample_size"],
        tile_sample_frames=merged["sample_tsize"],
    )
    return config, runtime


def convert_vae_state_dict(official: dict[str, torch.Tensor], expected_shapes: dict[str, tuple[int, ...]]):
    """The official causal VAE already uses diffusers' module names; only a `vae.` prefix and a
    `state_dict` wrapper may need removing. Checked as strictly as the transformer."""
    if "state_dict" in official and isinstance(official["state_dict"], dict):
        official = official["state_dict"]
    converted = {k.removeprefix("vae."): v for k, v in official.items()}
    problems = _limited("missing", sorted(set(expected_shapes) - set(converted)))
    problems += _limited("left over", sorted(set(converted) - set(expected_shapes)))
    problems += _limited(
        "wrong shape",
        [
            f"{k}: checkpoint {tuple(v.shape)}, model {expected_shapes[k]}"
            for k, v in sorted(converted.items())
            if k in expected_shapes and tuple(v.shape) != expected_shapes[k]
        ],
    )
    if problems:
        raise ConversionError("VAE checkpoint does not match the model", problems)
    return converted


# --- files ---------------------------------------------------------------------------------------
def load_official(path: Path) -> dict:
    """A pickle checkpoint, memory-mapped. Tensors-only unpickling first; the official files are
    plain dicts of tensors, so this normally succeeds."""
    try:
        return torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception as exc:  # noqa: BLE001 — report what failed, then try the permissive loader
        log.warning("safe unpickling of %s failed (%s); loading it as a trusted pickle", path, exc)
        return torch.load(path, map_location="cpu", weights_only=False)


def unwrap_module(checkpoint: dict, path: Path) -> dict:
    if OFFICIAL_STATE_KEY in checkpoint:
        return checkpoint[OFFICIAL_STATE_KEY]
    raise ConversionError(str(path), [f"no '{OFFICIAL_STATE_KEY}' key; top-level keys: {sorted(checkpoint)[:10]}"])


def cast_for_storage(state: dict[str, torch.Tensor], dtype: torch.dtype = torch.bfloat16) -> dict[str, torch.Tensor]:
    """Floating tensors to the storage dtype; fp8 weights and their fp32 scales stay as they are."""
    out = {}
    for key, tensor in state.items():
        if tensor.dtype == torch.float8_e4m3fn or key.endswith(FP8_SCALE_SUFFIX) or not tensor.is_floating_point():
            out[key] = tensor
        else:
            out[key] = tensor.to(dtype)
    return out


def save_sharded(state: dict[str, torch.Tensor], directory: Path, stem: str, config: dict) -> None:
    """diffusers' layout: `<stem>.safetensors`, or numbered shards plus an index json."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config, indent=2, default=list))
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key in sorted(state):
        nbytes = state[key].numel() * state[key].element_size()
        if shards[-1] and size + nbytes > SHARD_BYTES:
            shards.append({})
            size = 0
        shards[-1][key] = state[key]
        size += nbytes
    if len(shards) == 1:
        save_file(shards[0], directory / f"{stem}.safetensors")
        return
    weight_map = {}
    for i, shard in enumerate(shards, start=1):
        name = f"{stem}-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, directory / name)
        weight_map.update(dict.fromkeys(shard, name))
    index = {
        "metadata": {"total_size": sum(t.numel() * t.element_size() for t in state.values())},
        "weight_map": weight_map,
    }
    (directory / f"{stem}.safetensors.index.json").write_text(json.dumps(index, indent=2))


def _link_or_copy_tree(src: Path, dst: Path) -> None:
    """Hard links when source and destination share a file system (no extra 16 GB), else copies."""
    for path in src.rglob("*"):
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target.unlink()
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)


def full_size_config() -> dict:
    from avatarbot.avatar.hunyuan.model import HunyuanAvatarTransformer3DModel

    with torch.device("meta"):
        return dict(HunyuanAvatarTransformer3DModel().config)


def convert_checkpoint_dir(src: Path, dst: Path, fp8: bool, config: dict | None = None) -> None:
    """The whole conversion; raises ConversionError / FileNotFoundError with what is wrong.
    `config` defaults to the full-size transformer (tests pass a tiny one); the VAE's comes from
    the official vae/config.json."""
    config = dict(config or full_size_config())
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    transformer_dir = src / OFFICIAL_TRANSFORMER_DIR
    weights_file = transformer_dir / (OFFICIAL_FP8_FILE if fp8 else OFFICIAL_BF16_FILE)
    vae_config_file = src / OFFICIAL_VAE_DIR / "config.json"
    needed = [weights_file, src / OFFICIAL_VAE_DIR / "pytorch_model.pt", vae_config_file]
    if fp8:
        needed.append(transformer_dir / OFFICIAL_FP8_MAP_FILE)
    needed += [src / name for name in OFFICIAL_COPIED_DIRS if name not in OPTIONAL_DIRS]
    absent = [str(p) for p in needed if not p.exists()]
    if absent:
        raise FileNotFoundError("not found in the official directory:\n" + "\n".join(f"  - {p}" for p in absent))

    hidden = config["num_attention_heads"] * config["attention_head_dim"]
    official = unwrap_module(load_official(weights_file), weights_file)
    scales = None
    if fp8:
        map_file = transformer_dir / OFFICIAL_FP8_MAP_FILE
        scales = unwrap_module(load_official(map_file), map_file)
    layers = adapter_layers(config["num_layers"], config.get("audio_adapter_layers"))
    converted = convert_transformer_state_dict(official, model_shapes(config), hidden, scales, layers)
    save_sharded(cast_for_storage(converted), dst / layout.TRANSFORMER_DIR, layout.WEIGHTS_STEM, config)
    del official, converted

    try:
        official_vae_config = json.loads(vae_config_file.read_text())
    except ValueError as exc:
        raise ConversionError(str(vae_config_file), [f"not valid JSON: {exc}"]) from exc
    vae_config, vae_runtime = vae_config_from_official(official_vae_config)
    vae_official = load_official(src / OFFICIAL_VAE_DIR / "pytorch_model.pt")
    vae_state = convert_vae_state_dict(vae_official, vae_shapes(vae_config))
    save_sharded(cast_for_storage(vae_state, torch.float16), dst / layout.VAE_DIR, layout.WEIGHTS_STEM, vae_config)
    vae_runtime.save(dst / layout.VAE_DIR)

    for official_name, ours in OFFICIAL_COPIED_DIRS.items():
        if (src / official_name).is_dir():
            _link_or_copy_tree(src / official_name, dst / ours)
    (dst / layout.MARKER_FILE).write_text(json.dumps({"fp8": fp8, "source": str(src)}, indent=2))


def run_convert(src: Path, dst: Path, fp8: bool, transformer_config: Path | None = None) -> int:
    """`avatarbot convert-hunyuan SRC DST [--fp8] [--transformer-config JSON]`: 0 when done, 2
    with a report when not. The official release fixes the transformer's config in code
    (hymm_sp/config.py, HYVideo-T/2), so there is no file to read; `transformer_config` overrides
    fields of our full-size config for checkpoints of other shapes (never guessed from the
    checkpoint: a truncated file must fail, not shrink the model)."""
    src, dst = Path(src), Path(dst)
    if (src / "ckpts").is_dir() and not (src / OFFICIAL_TRANSFORMER_DIR).exists():
        src = src / "ckpts"  # accept the repository's weights/ folder too
    try:
        config = None
        if transformer_config is not None:
            overrides = json.loads(Path(transformer_config).read_text())
            unknown = sorted(set(overrides) - set(full_size_config()))
            if unknown:
                raise ConversionError(
                    str(transformer_config), [f"{k}: not a transformer config field" for k in unknown]
                )
            config = {**full_size_config(), **overrides}
            log.info("transformer config: released model with %s from %s", overrides, transformer_config)
        convert_checkpoint_dir(src, dst, fp8, config=config)
    except (ConversionError, FileNotFoundError, ValueError) as exc:
        print(f"conversion failed: {exc}", file=sys.stderr)
        return 2
    problems = layout.check_weights(dst)
    if problems:
        print("converted, but the result is incomplete:\n" + "\n".join(f"  - {p}" for p in problems), file=sys.stderr)
        return 2
    print(f"converted {src} -> {dst}")
    return 0
