"""`avatarbot convert-hunyuan` on a synthetic official release, then `avatarbot doctor`, then a
render by the hunyuan engine from the converted weights, all on the CPU.

The release is laid out as upstream's weights/README.md lists it, every file at toy size: the
bf16 transformer, the fp8 one with its scale map, the VAE with its config.json, LLaVA in four
safetensors shards with its config and tokenizer, CLIP-L, whisper-tiny, a README, and
det_align/detface.pt (a TorchScript stand-in with the real detector's interface).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")

from test_hunyuan_convert import CONFIG, _fp8_official, _write_official_vae, official_state_dict
from test_hunyuan_face import save_stand_in
from test_hunyuan_pipeline import TINY_SIZES, _speech, tiny_prompt_encoder, tiny_whisper

from avatarbot.avatar.hunyuan import convert
from avatarbot.media.types import Photo

pytestmark = pytest.mark.gpu


def synthetic_release(weights):
    """weights/ckpts/... as upstream ships it."""
    from transformers import WhisperFeatureExtractor

    ckpts = weights / "ckpts"
    transformers_dir = ckpts / convert.OFFICIAL_TRANSFORMER_DIR
    transformers_dir.mkdir(parents=True)
    (ckpts / "README.md").write_text("HunyuanVideo-Avatar checkpoints (synthetic, toy sizes)\n")
    torch.save({"module": official_state_dict()}, transformers_dir / convert.OFFICIAL_BF16_FILE)
    fp8_state, scales = _fp8_official()
    torch.save({"module": fp8_state}, transformers_dir / convert.OFFICIAL_FP8_FILE)
    torch.save({"module": scales}, transformers_dir / convert.OFFICIAL_FP8_MAP_FILE)
    _write_official_vae(ckpts / convert.OFFICIAL_VAE_DIR)
    encoders = tiny_prompt_encoder()
    encoders.llava.save_pretrained(ckpts / "llava_llama_image", max_shard_size="60KB")
    encoders.tokenizer.save_pretrained(ckpts / "llava_llama_image")
    encoders.clip.save_pretrained(ckpts / "text_encoder_2")
    encoders.clip_tokenizer.save_pretrained(ckpts / "text_encoder_2")
    tiny_whisper().save_pretrained(ckpts / "whisper-tiny")
    WhisperFeatureExtractor().save_pretrained(ckpts / "whisper-tiny")
    save_stand_in(ckpts / "det_align")
    return weights


def avatarbot(*args, tmp_path, **env):
    environment = dict(os.environ, HF_HUB_OFFLINE="1", AVATARBOT_DATA_DIR=str(tmp_path / "data"), **env)
    return subprocess.run(
        [sys.executable, "-m", "avatarbot", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
        cwd=tmp_path,
    )


def test_convert_then_doctor_then_render(tmp_path):
    from avatarbot.avatar.engine import RenderOptions
    from avatarbot.avatar.hunyuan.engine import HunyuanEngine
    from avatarbot.avatar.hunyuan.face_detector import UpstreamFaceDetector
    from avatarbot.media.video import encode_mp4, probe
    from avatarbot.settings import HunyuanSettings

    weights = synthetic_release(tmp_path / "weights")
    assert len(list((weights / "ckpts" / "llava_llama_image").glob("model-0000*-of-0000*.safetensors"))) >= 2
    config_file = tmp_path / "tiny-transformer.json"
    config_file.write_text(json.dumps(CONFIG))
    dst = tmp_path / "converted"

    refused = avatarbot("convert-hunyuan", str(weights), str(dst), tmp_path=tmp_path)  # no config: the 13B shapes
    assert refused.returncode == 2 and "transformer checkpoint does not match the model" in refused.stderr
    done = avatarbot(
        "convert-hunyuan", str(weights), str(dst), "--transformer-config", str(config_file), tmp_path=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "dropping the official audio adapters after double blocks 3, 5" in done.stderr  # the log line
    assert (dst / "face_detector" / "detface.pt").is_file()

    doctor = avatarbot(
        "doctor", tmp_path=tmp_path, AVATARBOT_HUNYUAN__WEIGHTS_DIR=str(dst), AVATARBOT_RENDER__ENGINE="hunyuan"
    )
    assert f"[ok ] HunyuanVideo-Avatar weights: {dst} (face masks from upstream's detector)" in doctor.stdout
    assert doctor.returncode == 0, doctor.stdout

    engine = HunyuanEngine.from_settings(HunyuanSettings(weights_dir=dst, num_inference_steps=2), device="cpu")
    engine.quality_short_side = TINY_SIZES
    assert isinstance(engine.pipeline.face_detector, UpstreamFaceDetector)
    assert engine.pipeline.prompt_encoder.text_tokens == "upstream"
    assert engine.pipeline.vae.tile_sample_min_num_frames == 64
    rgb = np.random.default_rng(2).integers(0, 255, size=(64, 80, 3), dtype=np.uint8)
    photo = Photo(rgb=rgb, faces=(), main_face=None)  # our detector found nothing; upstream's stand-in does
    audio = _speech(1.0)
    clip = engine.render(photo, audio, RenderOptions(quality="fast", seed=3))
    assert clip.notes == []
    assert (clip.frame_count, clip.width, clip.height) == (25, 64, 64)
    out = encode_mp4(clip, audio, tmp_path / "clip.mp4")
    info = probe(out)
    assert sorted(s.kind for s in info.streams) == ["audio", "video"]
    assert abs(info.duration - 1.0) <= 0.1
