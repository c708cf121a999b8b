"""The converted weights directory: what it must hold, and loading it.

`check_weights` is what `avatarbot doctor` calls; like this module's import it needs no torch
(file checks only). `load_components` builds the real pipeline pieces and imports torch itself.

Layout written by `avatarbot convert-hunyuan`:
    transformer/   config.json + diffusion_pytorch_model*.safetensors (fp8 files add *.weight_scale)
    vae/           config.json + diffusion_pytorch_model*.safetensors + avatarbot-vae.json
    text_encoder/  LLaVA-Llama-3-8B (Hugging Face layout, copied from llava_llama_image/)
    text_encoder_2/ CLIP-L text model + tokenizer
    whisper/       whisper-tiny (model + preprocessor_config.json)
    face_detector/ upstream's det_align (optional: with detface.pt the face mask comes from it, as
                   upstream; without, from avatarbot.media's detector)
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TRANSFORMER_DIR = "transformer"
VAE_DIR = "vae"
TEXT_ENCODER_DIR = "text_encoder"
TEXT_ENCODER_2_DIR = "text_encoder_2"
WHISPER_DIR = "whisper"
FACE_DETECTOR_DIR = "face_detector"
WEIGHTS_STEM = "diffusion_pytorch_model"
MARKER_FILE = "avatarbot-hunyuan.json"
VAE_RUNTIME_FILE = "avatarbot-vae.json"  # tiles and mid-block attention (vae.VaeRuntime)
OFFICIAL_MARKERS = ("hunyuan-video-t2v-720p", "ckpts")

# What each Hugging Face component folder needs: config + weights + its preprocessing files.
_HF_WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")
_COMPONENT_FILES = {
    TEXT_ENCODER_DIR: ("LLaVA text encoder", ("config.json",), (("tokenizer.json", "tokenizer_config.json"),)),
    TEXT_ENCODER_2_DIR: ("CLIP-L text encoder", ("config.json",), (("tokenizer.json", "vocab.json"),)),
    WHISPER_DIR: ("whisper-tiny audio encoder", ("config.json", "preprocessor_config.json"), ()),
}


def _has_weights(directory: Path) -> bool:
    return any(any(directory.glob(pattern)) for pattern in _HF_WEIGHT_PATTERNS)


def _check_safetensors_dir(directory: Path, what: str) -> list[str]:
    if not directory.is_dir():
        return [f"{what}: folder {directory} is missing"]
    problems = []
    if not (directory / "config.json").is_file():
        problems.append(f"{what}: {directory / 'config.json'} is missing")
    index = directory / f"{WEIGHTS_STEM}.safetensors.index.json"
    single = directory / f"{WEIGHTS_STEM}.safetensors"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (ValueError, KeyError) as exc:
            return problems + [f"{what}: index {index} is unreadable ({exc})"]
        problems += [
            f"{what}: shard {directory / s} is missing" for s in sorted(shards) if not (directory / s).is_file()
        ]
    elif not single.is_file():
        problems.append(f"{what}: no {WEIGHTS_STEM}.safetensors in {directory}")
    return problems


def check_weights(directory: Path | str | None) -> list[str]:
    """Human-readable list of what is missing or wrong in a converted weights directory; empty
    when it is complete. Checks files only, so it is quick and needs no GPU."""
    if directory is None:
        return ["no HunyuanVideo-Avatar weights directory is set (hunyuan.weights_dir or --weights)"]
    root = Path(directory)
    if not root.is_dir():
        return [f"weights directory {root} does not exist"]
    if not (root / MARKER_FILE).is_file() and any((root / m).exists() for m in OFFICIAL_MARKERS):
        return [
            (
                f"{root} holds the official download, not converted weights; run "
                f"`avatarbot convert-hunyuan {root} DST` and point weights_dir at DST"
            )
        ]
    problems = _check_safetensors_dir(root / TRANSFORMER_DIR, "transformer")
    problems += _check_safetensors_dir(root / VAE_DIR, "VAE")
    if (root / VAE_DIR).is_dir() and not (root / VAE_DIR / VAE_RUNTIME_FILE).is_file():
        problems.append(
            f"VAE: {root / VAE_DIR / VAE_RUNTIME_FILE} is missing (written by convert-hunyuan from the official "
            "vae/config.json; re-run the conversion)"
        )
    for folder, (what, files, one_of) in _COMPONENT_FILES.items():
        path = root / folder
        if not path.is_dir():
            problems.append(f"{what}: folder {path} is missing")
            continue
        problems += [f"{what}: {path / name} is missing" for name in files if not (path / name).is_file()]
        for alternatives in one_of:
            if not any((path / name).is_file() for name in alternatives):
                problems.append(f"{what}: tokenizer files ({' or '.join(alternatives)}) missing in {path}")
        if not _has_weights(path):
            problems.append(f"{what}: no weights (*.safetensors or *.bin) in {path}")
    return problems


UPSTREAM_FACE_DETECTOR_FILE = "detface.pt"  # in FACE_DETECTOR_DIR, copied from the official det_align/


def has_upstream_face_detector(directory: Path | str) -> bool:
    """Whether face masks will come from upstream's detector (else from avatarbot's own)."""
    return (Path(directory) / FACE_DETECTOR_DIR / UPSTREAM_FACE_DETECTOR_FILE).is_file()


# --- loading (torch from here on) ----------------------------------------------------------------
@dataclass
class Components:
    transformer: Any
    vae: Any
    prompt_encoder: Any
    audio_encoder: Any
    vae_runtime: Any
    face_detector: Any = None  # upstream's, when the converted weights carry it


def read_safetensors_dir(directory: Path) -> dict:
    from safetensors.torch import load_file

    state = {}
    for file in sorted(directory.glob(f"{WEIGHTS_STEM}*.safetensors")):
        state.update(load_file(file))
    return state


def load_transformer(directory: Path, dtype: str = "bf16", device: str = "cpu"):
    """Build the transformer on the meta device and fill it strictly from the safetensors: no
    random leftovers, no ignored tensors. fp8: checkpoints converted with --fp8 keep their scales;
    bf16 checkpoints are quantised per layer at load."""
    import torch

    from avatarbot.avatar.hunyuan import fp8
    from avatarbot.avatar.hunyuan.model import HunyuanAvatarTransformer3DModel

    config = json.loads((directory / "config.json").read_text())
    with torch.device("meta"):
        model = HunyuanAvatarTransformer3DModel.from_config(config)
    state = read_safetensors_dir(directory)
    stored_fp8 = fp8.layers_with_scales(state)
    if dtype == "fp8" and not stored_fp8:
        stored_fp8 = fp8.block_linear_names(model)
        state = fp8.quantize_state_dict(state, stored_fp8)
    if stored_fp8:
        fp8.swap_block_linears(model, only=stored_fp8)
    state = {
        k: (v if v.dtype == torch.float8_e4m3fn or k.endswith(fp8.SCALE_SUFFIX) else v.to(torch.bfloat16))
        for k, v in state.items()
    }
    model.load_state_dict(state, strict=True, assign=True)
    return model.to(device).eval()


def load_components(
    directory: Path, dtype: str = "bf16", device: str = "cpu", helper_dtype=None, text_tokens: str = "upstream"
) -> Components:
    """Everything the pipeline needs, on `device`. The text encoders and the VAE load in fp16
    (as upstream runs them) unless `helper_dtype` says otherwise (fp32 for CPU runs).
    `text_tokens`: which LLaVA rows the transformer sees (conditioning.LlavaPromptEncoder)."""
    import torch
    from transformers import (
        AutoTokenizer,
        CLIPTextModel,
        LlavaForConditionalGeneration,
        WhisperFeatureExtractor,
        WhisperModel,
    )

    from avatarbot.avatar.hunyuan.conditioning import (
        LlavaPromptEncoder,
        WhisperAudioEncoder,
    )
    from avatarbot.avatar.hunyuan.face_detector import UpstreamFaceDetector
    from avatarbot.avatar.hunyuan.vae import load_vae

    root = Path(directory)
    problems = check_weights(root)
    if problems:
        raise FileNotFoundError("HunyuanVideo-Avatar weights incomplete:\n" + "\n".join(problems))
    helper_dtype = helper_dtype or torch.float16
    transformer = load_transformer(root / TRANSFORMER_DIR, dtype=dtype, device=device)
    vae, vae_runtime = load_vae(root / VAE_DIR, helper_dtype)
    llava = LlavaForConditionalGeneration.from_pretrained(root / TEXT_ENCODER_DIR, dtype=helper_dtype).eval()
    clip = CLIPTextModel.from_pretrained(root / TEXT_ENCODER_2_DIR, dtype=helper_dtype).eval()
    prompt_encoder = LlavaPromptEncoder(
        tokenizer=AutoTokenizer.from_pretrained(root / TEXT_ENCODER_DIR),
        llava=llava,
        clip_tokenizer=AutoTokenizer.from_pretrained(root / TEXT_ENCODER_2_DIR),
        clip=clip,
        text_tokens=text_tokens,
    )
    audio_encoder = WhisperAudioEncoder(
        WhisperFeatureExtractor.from_pretrained(root / WHISPER_DIR),
        WhisperModel.from_pretrained(root / WHISPER_DIR, dtype=torch.float32).encoder.eval(),
    )
    face_detector = None
    if has_upstream_face_detector(root):
        face_detector = UpstreamFaceDetector.load(root / FACE_DETECTOR_DIR)
        log.info("face masks from upstream's detector (%s)", root / FACE_DETECTOR_DIR)
    else:
        log.info("no %s in the weights: face masks from avatarbot's own face detector", FACE_DETECTOR_DIR)
    return Components(transformer, vae, prompt_encoder, audio_encoder, vae_runtime, face_detector)
