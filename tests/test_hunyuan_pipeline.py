"""HunyuanVideo-Avatar end to end on a tiny random config (CPU): photo + audio -> frames -> MP4.

Every part is the real one at toy sizes: our transformer, diffusers' causal VAE, a LLaVA and a
CLIP text model from transformers with a small word-level tokenizer, whisper's feature extractor
and encoder. Only the sizes (and so the weights) are made up.
"""

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")

from avatarbot import errors, messages
from avatarbot.avatar.engine import Progress, RenderOptions, frame_count_for
from avatarbot.media.types import Audio, Face, Photo

pytestmark = pytest.mark.gpu

WORDS = [
    "[UNK]",
    "[PAD]",
    "<image>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "A",
    "person",
    "talking",
]
TINY_SIZES = {"fast": 64, "standard": 64, "high": 128}


def tiny_prompt_encoder(text_tokens="upstream"):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        PreTrainedTokenizerFast,
    )

    from avatarbot.avatar.hunyuan.conditioning import (
        PROMPT_TEMPLATE,
        LlavaPromptEncoder,
    )

    word_level = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    word_level.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=word_level, unk_token="[UNK]", pad_token="[PAD]", additional_special_tokens=WORDS[2:6]
    )
    llava = LlavaForConditionalGeneration(
        LlavaConfig(
            vision_config=CLIPVisionConfig(
                hidden_size=8,
                intermediate_size=16,
                num_hidden_layers=2,
                num_attention_heads=2,
                image_size=336,
                patch_size=14,
                projection_dim=8,
            ),
            text_config=LlamaConfig(
                vocab_size=len(WORDS),
                hidden_size=16,
                intermediate_size=32,
                num_hidden_layers=4,  # hidden_states[-3] is then a layer that saw position ids
                num_attention_heads=2,
                num_key_value_heads=2,
                pad_token_id=1,
            ),
            image_token_id=2,
            pad_token_id=1,
            vision_feature_layer=-2,
            vision_feature_select_strategy="default",
        )
    ).eval()
    clip = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(WORDS), hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
            projection_dim=8, max_position_embeddings=77, eos_token_id=5, pad_token_id=1, bos_token_id=0,
        )
    ).eval()  # fmt: skip
    template_tokens = len(tokenizer(PROMPT_TEMPLATE.split("{}")[0])["input_ids"])
    return LlavaPromptEncoder(
        tokenizer, llava, tokenizer, clip, template_tokens=template_tokens, text_tokens=text_tokens
    )


def tiny_audio_encoder():
    from transformers import WhisperFeatureExtractor

    from avatarbot.avatar.hunyuan.conditioning import WhisperAudioEncoder

    return WhisperAudioEncoder(WhisperFeatureExtractor(), tiny_whisper().encoder.eval())


def tiny_whisper():
    from transformers import WhisperConfig, WhisperModel

    config = WhisperConfig(
        d_model=8, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=16, decoder_ffn_dim=16, num_mel_bins=80, max_source_positions=1500,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1, vocab_size=8,
    )  # fmt: skip
    return WhisperModel(config).eval()


def tiny_pipeline(latent_window=33, offload="none", **speed_modes):
    from diffusers import AutoencoderKLHunyuanVideo

    from avatarbot.avatar.hunyuan.model import (
        TINY_CONFIG,
        HunyuanAvatarTransformer3DModel,
    )
    from avatarbot.avatar.hunyuan.pipeline import HunyuanVideoAvatarPipeline

    torch.manual_seed(0)
    # text_embed_dim / pooled dim / audio sizes must match the tiny encoders above
    transformer = HunyuanAvatarTransformer3DModel(**TINY_CONFIG).eval()
    vae = AutoencoderKLHunyuanVideo(
        latent_channels=4, block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=4,
        mid_block_add_attention=False,
    ).eval()  # fmt: skip
    return HunyuanVideoAvatarPipeline(
        transformer,
        vae,
        tiny_prompt_encoder(),
        tiny_audio_encoder(),
        device="cpu",
        latent_window=latent_window,
        offload=offload,
        **speed_modes,
    )


@pytest.fixture(scope="module")
def pipeline():
    return tiny_pipeline()


def _photo(width=80, height=64, face=True):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)
    faces = ()
    if face:
        faces = (Face(box=(30.0, 20.0, 50.0, 44.0), score=0.9, landmarks={}),)
    return Photo(rgb=rgb, faces=faces, main_face=faces[0] if faces else None)


def _speech(seconds=1.0, sample_rate=16_000):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return Audio(
        samples=(0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32),
        sample_rate=sample_rate,
    )


def test_pipeline_returns_frames_covering_the_audio(pipeline):
    audio = _speech(1.0)
    seen = []
    frames = pipeline(
        image=_photo().rgb,
        audio=audio.samples,
        num_inference_steps=2,
        quality=64,
        callback=lambda d, t: seen.append((d, t)),
    )
    assert frames.dtype == np.uint8
    assert frames.shape == (25, 64, 64, 3)  # 1 s at 25 fps; 80x64 photo -> 64x64 bucket
    assert seen == [(1, 2), (2, 2)]
    assert frames.std() > 0  # a random tiny model still draws something, not a blank


def test_same_seed_same_frames_other_seed_differs(pipeline):
    audio = _speech(0.4)
    a = pipeline(image=_photo().rgb, audio=audio.samples, num_inference_steps=1, quality=64, seed=3)
    b = pipeline(image=_photo().rgb, audio=audio.samples, num_inference_steps=1, quality=64, seed=3)
    c = pipeline(image=_photo().rgb, audio=audio.samples, num_inference_steps=1, quality=64, seed=4)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_sliding_windows_and_step_cache_run_past_one_window():
    """A small window (5 latent frames = 17 video frames) makes a 2 s clip (50 frames) loop over
    upstream's (55 // 16 + 1) * 4 + 1 = 17 latent frames, 4 windows per step; with 10 steps the
    cache schedule runs 6 steps in full."""
    from avatarbot.avatar.hunyuan import schedule

    small = tiny_pipeline(latent_window=5)
    audio = _speech(2.0).samples
    assert schedule.full_steps(10) == {0, 1, 2, 3, 8, 9}
    calls = {"all": 0, "first_block": 0}
    small.transformer.register_forward_hook(lambda *a: calls.__setitem__("all", calls["all"] + 1))
    small.transformer.transformer_blocks[0].register_forward_hook(
        lambda *a: calls.__setitem__("first_block", calls["first_block"] + 1)
    )
    cached = small(image=_photo().rgb, audio=audio, num_inference_steps=10, quality=64, step_cache=True)
    assert cached.shape == (50, 64, 64, 3)
    assert schedule.denoise_length(50, window=5) == 17
    assert calls == {"all": 10 * 4 * 2, "first_block": 6 * 4 * 2}  # steps x windows x guidance branches
    uncached = small(image=_photo().rgb, audio=audio, num_inference_steps=10, quality=64, step_cache=False)
    assert calls["first_block"] == 48 + 80
    assert not np.array_equal(cached, uncached)


def test_block_offload_and_model_offload_give_the_same_frames():
    """diffusers' group offloading (block level, onload to the CPU here) must not change a pixel,
    including on cached steps that run only the last block."""
    audio = _speech(1.0).samples
    results = [
        tiny_pipeline(latent_window=5, offload=offload)(
            image=_photo().rgb, audio=audio, num_inference_steps=10, quality=64, seed=2
        )
        for offload in ("none", "model", "block")
    ]
    assert np.array_equal(results[0], results[1])
    assert np.array_equal(results[0], results[2])


def test_step_cache_reuses_the_last_block_input():
    """With the cache filled at a full step, a cached call at the same inputs gives the same output."""
    from avatarbot.avatar.hunyuan.model import (
        TINY_CONFIG,
        HunyuanAvatarTransformer3DModel,
    )

    torch.manual_seed(0)
    model = HunyuanAvatarTransformer3DModel(**TINY_CONFIG).eval()
    t = 3
    inputs = dict(
        hidden_states=torch.randn(1, 4, t, 4, 6),
        timestep=torch.tensor([500.0]),
        ref_latents=torch.randn(1, 4, t, 4, 6),
        encoder_hidden_states=torch.randn(1, 5, 16),
        pooled_projections=torch.randn(1, 8),
        audio_embeds=torch.randn(1, 4 * t - 3, 10, 3, 8),
        face_mask=torch.ones(1, 1, 1, 4, 6),
        motion_exp=torch.full((1, 4), 30.0),
        motion_pose=torch.full((1, 4), 25.0),
        fps=torch.tensor([25.0]),
    )
    with torch.no_grad():
        full = model(**inputs, return_block_cache=True)
        cached = model(**inputs, block_cache=full.block_cache)
    assert full.block_cache.video.shape == (1, t, 6, 16)
    torch.testing.assert_close(cached.sample, full.sample)


def test_audio_adapters_only_write_inside_the_face_mask():
    """Zero mask: the audio cannot change the prediction; full mask: it does."""
    from avatarbot.avatar.hunyuan.model import (
        TINY_CONFIG,
        HunyuanAvatarTransformer3DModel,
    )

    torch.manual_seed(0)
    model = HunyuanAvatarTransformer3DModel(**TINY_CONFIG).eval()
    for adapter in model.audio_adapters:  # upstream zero-inits to_out; give it weight to matter
        torch.nn.init.normal_(adapter.to_out.weight, std=0.5)

    def run(mask_value, seed):
        g = torch.Generator().manual_seed(0)
        inputs = dict(
            hidden_states=torch.randn(1, 4, 2, 4, 4, generator=g),
            timestep=torch.tensor([700.0]),
            ref_latents=torch.randn(1, 4, 2, 4, 4, generator=g),
            encoder_hidden_states=torch.randn(1, 5, 16, generator=g),
            pooled_projections=torch.randn(1, 8, generator=g),
            face_mask=torch.full((1, 1, 1, 4, 4), mask_value),
            motion_exp=torch.full((1, 4), 30.0),
            motion_pose=torch.full((1, 4), 25.0),
            fps=torch.tensor([25.0]),
        )
        audio = torch.randn(1, 5, 10, 3, 8, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            return model(**inputs, audio_embeds=audio).sample

    torch.testing.assert_close(run(0.0, 1), run(0.0, 2))
    assert not torch.allclose(run(1.0, 1), run(1.0, 2))


def test_engine_renders_a_clip_and_encodes_an_mp4(tmp_path, pipeline):
    from avatarbot.avatar.hunyuan.engine import HunyuanEngine
    from avatarbot.media.video import encode_mp4, probe

    engine = HunyuanEngine(pipeline=pipeline, num_inference_steps=2, quality_short_side=TINY_SIZES)
    audio = _speech(1.2, sample_rate=22_050)  # not 16 kHz: the engine resamples
    events = []
    clip = engine.render(_photo(), audio, RenderOptions(quality="fast", seed=1), progress=events.append)
    assert clip.frame_count == frame_count_for(audio.duration) == 30
    assert events[0] == Progress("preparing", 0, 1)
    assert events[-1] == Progress("rendering", 2, 2)
    assert clip.notes == []
    out = encode_mp4(clip, audio, tmp_path / "clip.mp4")
    info = probe(out)
    assert out.stat().st_size > 0
    assert info is not None


def test_engine_without_a_face_moves_the_whole_frame_and_says_so(pipeline):
    from avatarbot.avatar.hunyuan.engine import HunyuanEngine

    engine = HunyuanEngine(pipeline=pipeline, num_inference_steps=1, quality_short_side=TINY_SIZES)
    clip = engine.render(_photo(face=False), _speech(0.3), RenderOptions(quality="fast"))
    assert clip.notes == [messages.NO_FACE_NOTE]
    assert len(list(clip.frames)) == clip.frame_count


def test_engine_cancels_between_steps(pipeline):
    from avatarbot.avatar.hunyuan.engine import HunyuanEngine

    engine = HunyuanEngine(pipeline=pipeline, num_inference_steps=3, quality_short_side=TINY_SIZES)
    steps = []

    def progress(p):
        steps.append(p)

    with pytest.raises(errors.RenderCancelled) as caught:
        engine.render(
            _photo(), _speech(0.3), RenderOptions(quality="fast"), progress=progress,
            should_cancel=lambda: any(p.stage == "rendering" for p in steps),
        )  # fmt: skip
    assert caught.value.user_message == messages.CANCELLED
    assert [p.step for p in steps if p.stage == "rendering"] == [1]


def test_engine_refuses_an_incomplete_weights_directory(tmp_path):
    from avatarbot.avatar.hunyuan.engine import HunyuanEngine
    from avatarbot.settings import HunyuanSettings

    with pytest.raises(errors.RenderError) as caught:
        HunyuanEngine.from_settings(HunyuanSettings(weights_dir=tmp_path))
    assert caught.value.user_message == messages.RENDER_FAILED
    assert "transformer" in caught.value.detail


# --- the VAE as upstream runs it -------------------------------------------------------------------
def _tiny_vae(seed=0):
    from diffusers import AutoencoderKLHunyuanVideo

    torch.manual_seed(seed)
    return AutoencoderKLHunyuanVideo(
        latent_channels=4, block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=4
    ).eval()  # fmt: skip


def _blend(previous, tile, extent, dim):
    """Upstream's blend_v / blend_h / blend_t: the first `extent` slices of `tile` fade in from the
    last `extent` of `previous` with weights k / extent, in place."""
    extent = min(previous.shape[dim], tile.shape[dim], extent)
    shape = [1] * tile.ndim
    shape[dim] = extent
    weight = (torch.arange(extent, dtype=tile.dtype) / extent).view(shape)
    head = tile.narrow(dim, 0, extent)
    head.copy_(previous.narrow(dim, previous.shape[dim] - extent, extent) * (1 - weight) + head * weight)
    return tile


def upstream_temporal_tiled_decode(vae, z):
    """Upstream's temporal tiling at decode, restated from hymm_sp/vae/autoencoder_kl_causal_3d.py
    with its sizes (sample_tsize 64, overlap 1/4): tiles of 16 + 1 latent frames every 12; each tile
    after the first drops its first frame; its first 64 / 4 = 16 frames blend linearly (weights
    k / 16) into the previous tile's last 16, in place; the first tile keeps 49 frames, the others 48."""
    tiles = []
    for start in range(0, z.shape[2], 12):
        decoded = vae.decoder(vae.post_quant_conv(z[:, :, start : start + 17]))
        tiles.append(decoded if start == 0 else decoded[:, :, 1:])
    kept = [tiles[0][:, :, :49]] + [_blend(tiles[i - 1], tiles[i], 16, 2)[:, :, :48] for i in range(1, len(tiles))]
    return torch.cat(kept, dim=2)


def test_pipeline_vae_uses_upstreams_tiles(pipeline):
    vae = pipeline.vae
    assert vae.use_tiling and vae.use_framewise_decoding and vae.use_framewise_encoding
    assert (vae.tile_sample_min_num_frames, vae.tile_sample_stride_num_frames) == (64, 48)
    assert (vae.tile_sample_min_height, vae.tile_sample_min_width) == (256, 256)
    assert (vae.tile_sample_stride_height, vae.tile_sample_stride_width) == (192, 192)


def test_vae_decodes_33_latent_frames_in_upstreams_temporal_tiles():
    """diffusers' defaults (16 + 1 frames, stride 12) would give a different video; with upstream's
    64 / 48 the decode equals upstream's rule written out above."""
    from avatarbot.avatar.hunyuan.vae import configure_vae

    vae = configure_vae(_tiny_vae())
    z = torch.randn(1, 4, 33, 4, 4, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours = vae.decode(z).sample
        expected = upstream_temporal_tiled_decode(vae, z)
        vae.enable_tiling(tile_sample_min_num_frames=16, tile_sample_stride_num_frames=12)
        diffusers_default = vae.decode(z).sample
    assert ours.shape == expected.shape == (1, 3, 129, 32, 32)
    torch.testing.assert_close(ours, expected)
    assert (diffusers_default - expected).abs().max() > 1e-3


def test_vae_encodes_129_frames_in_upstreams_temporal_tiles():
    """Encode: 64 + 1 frame tiles every 48 frames, each after the first drops its first latent
    frame and blends int(16 * 1/4) = 4 latent frames; the first keeps 13 latent frames, the others 12."""
    from avatarbot.avatar.hunyuan.vae import configure_vae

    vae = configure_vae(_tiny_vae())
    x = torch.rand(1, 3, 129, 32, 32, generator=torch.Generator().manual_seed(6)) * 2 - 1
    with torch.no_grad():
        tiles = []
        for start in range(0, 129, 48):
            moments = vae.quant_conv(vae.encoder(x[:, :, start : start + 65]))
            tiles.append(moments if start == 0 else moments[:, :, 1:])
        kept = [tiles[0][:, :, :13]] + [_blend(tiles[i - 1], tiles[i], 4, 2)[:, :, :12] for i in range(1, len(tiles))]
        expected = torch.cat(kept, dim=2)
        ours = vae.encode(x).latent_dist
    torch.testing.assert_close(torch.cat([ours.mean, ours.logvar], dim=1), expected)


def test_vae_decodes_a_large_frame_in_upstreams_spatial_tiles():
    """Decode past 256 px: 32-latent tiles every 24, blended over 64 px, each kept to 192 px."""
    from avatarbot.avatar.hunyuan.vae import configure_vae

    vae = configure_vae(_tiny_vae())
    z = torch.randn(1, 4, 1, 36, 40, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        rows = [
            [vae.decoder(vae.post_quant_conv(z[:, :, :, i : i + 32, j : j + 32])) for j in range(0, 40, 24)]
            for i in range(0, 36, 24)
        ]
        result_rows = []
        for i, row in enumerate(rows):
            kept = []
            for j, tile in enumerate(row):
                if i > 0:
                    tile = _blend(rows[i - 1][j], tile, 64, 3)
                if j > 0:
                    tile = _blend(row[j - 1], tile, 64, 4)
                kept.append(tile[:, :, :, :192, :192])
            result_rows.append(torch.cat(kept, dim=-1))
        expected = torch.cat(result_rows, dim=-2)
        ours = vae.decode(z).sample
    assert ours.shape == expected.shape == (1, 3, 1, 288, 320)
    torch.testing.assert_close(ours, expected)


def test_vae_mid_block_attention_is_causal_only_when_the_config_says_so():
    """Upstream's default (mid_block_causal_attn off): the mid-block attention lets every latent
    frame see every other, i.e. it ignores the causal mask diffusers' mid-block passes. With the
    setting on, diffusers' own masked attention runs. Both mid-blocks (encoder and decoder)."""
    from diffusers.models.attention_processor import AttnProcessor2_0
    from diffusers.models.autoencoders.autoencoder_kl_hunyuan_video import prepare_causal_attention_mask

    from avatarbot.avatar.hunyuan.vae import VaeRuntime, configure_vae

    frames, pixels = 3, 16
    x = torch.randn(1, frames * pixels, 8, generator=torch.Generator().manual_seed(4))
    causal_mask = prepare_causal_attention_mask(frames, pixels, x.dtype, x.device, batch_size=1)
    full, causal = (configure_vae(_tiny_vae(), VaeRuntime(mid_block_causal_attn=c)) for c in (False, True))
    with torch.no_grad():
        for coder in ("encoder", "decoder"):
            attention = getattr(full, coder).mid_block.attentions[0]
            unmasked = AttnProcessor2_0()(attention, x, attention_mask=None)
            masked = AttnProcessor2_0()(attention, x, attention_mask=causal_mask)
            torch.testing.assert_close(attention(x, attention_mask=causal_mask), unmasked)
            torch.testing.assert_close(
                getattr(causal, coder).mid_block.attentions[0](x, attention_mask=causal_mask), masked
            )
            assert (unmasked - masked).abs().max() > 1e-4
        z = torch.randn(1, 4, frames, 4, 4, generator=torch.Generator().manual_seed(5))
        assert (full.decode(z).sample - causal.decode(z).sample).abs().max() > 1e-4


def test_reference_latents_are_a_posterior_sample_drawn_from_the_jobs_generator(pipeline):
    """Upstream samples the posterior (not its mode); a seeded generator makes it reproducible."""
    pixels = _photo(64, 64).rgb
    a = pipeline._reference_latents(pixels, torch.Generator().manual_seed(5))
    b = pipeline._reference_latents(pixels, torch.Generator().manual_seed(5))
    c = pipeline._reference_latents(pixels, torch.Generator().manual_seed(6))
    video = (
        torch.from_numpy(pixels).float().div(127.5).sub(1).permute(2, 0, 1)[None, :, None].expand(-1, -1, 129, -1, -1)
    )
    with torch.no_grad():
        posterior = pipeline.vae.encode(video).latent_dist
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    scale = pipeline.vae.config.scaling_factor
    noise = (a / scale - posterior.mean) / posterior.std
    assert not torch.allclose(a, posterior.mode() * scale)
    torch.testing.assert_close(noise, torch.randn(noise.shape, generator=torch.Generator().manual_seed(5)))
