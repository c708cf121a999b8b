"""The render arithmetic of HunyuanVideo-Avatar, checked against hand-computed cases and the
official sampler's constants."""

import itertools
import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")

from avatarbot.avatar.engine import frame_count_for
from avatarbot.avatar.hunyuan import schedule

pytestmark = pytest.mark.gpu


# --- frames and windows ----------------------------------------------------------------------------
def test_latent_and_video_frame_counts():
    assert schedule.latent_frames_for(1) == 1
    assert schedule.latent_frames_for(129) == 33
    assert schedule.latent_frames_for(130) == 34
    assert schedule.video_frames_for(33) == 129
    assert schedule.denoise_length(25) == 33  # short clips still denoise one full window
    assert schedule.denoise_length(1500) == 385  # 60 s: upstream's loop, (1505 // 128 + 1) * 32 + 1


def upstream_loop(num_frames: int, steps: int = 50) -> tuple[list, int]:
    """Upstream's window loop, index arithmetic only, restated by hand from
    hymm_sp/sample_inference_audio.py (audio padded to 129 frames, or 5 silent frames added past
    129) and the denoising loop of hymm_sp/diffusion/pipelines/pipeline_hunyuan_video_audio.py.
    Returns, per step, the (latent indices, audio indices) of each window, and the length of the
    padded audio the windows index."""
    audio = 129 if num_frames <= 129 else num_frames + 5
    video_latents = (audio // 4 * 4 + 1 - 1) // 4 + 1
    loop = (audio // 128 + 1) * 32 + 1
    pad = (audio // 128 + 1) * 128 + 4 - audio
    audio_all = audio + min(pad, audio)  # zeros_like(audio[:, :pad]) is at most `audio` long
    latents_all, shift, shift_offset = loop, 0, 10
    if video_latents == 33 or loop == 33:
        loop, shift_offset, latents_all, audio_all = 33, 0, 33, min(audio_all, 132)
    steps_out = []
    for _ in range(steps):
        windows = []
        for index_start in range(0, loop, 33):
            start = index_start - shift
            latents = [i % latents_all for i in range(start, start + 33)]
            heard = [i % audio_all for i in range(start * 4, (start + 33) * 4 - 3)]
            windows.append((latents, heard))
        steps_out.append(windows)
        shift = (shift + shift_offset) % 33
    return steps_out, audio_all


@pytest.mark.parametrize(
    ("frames", "loop", "decoded"),
    [(100, 33, 33), (130, 65, 34), (200, 65, 52), (300, 97, 77), (400, 129, 102), (1500, 385, 377)],
)
def test_window_sets_and_audio_indices_equal_upstreams_loop(frames, loop, decoded):
    """Hand-computed loop lengths (200 frames: 65 latents, not the clip's own 51), then every
    window and its audio frames at each of 50 steps equal upstream's loop."""
    assert schedule.denoise_length(frames) == loop
    assert schedule.decoded_latents(frames) == decoded
    assert schedule.video_frames_for(decoded) >= frames
    upstream, audio_all = upstream_loop(frames)
    assert audio_all == schedule.VAE_TIME_STRIDE * loop  # the audio buffer our pipeline builds
    ours = [
        [(w, schedule.audio_frames_for_window(w[0], loop)) for w in schedule.windows_for_step(step, loop)]
        for step in range(50)
    ]
    assert ours == upstream


@pytest.mark.parametrize("seconds", [1, 2, 5, 5.16, 5.2, 10, 16, 17, 29.9, 30, 31, 45, 59.97, 60])
def test_windows_cover_every_latent_frame_at_every_step(seconds):
    frames = frame_count_for(seconds)
    total = schedule.denoise_length(frames)
    assert schedule.video_frames_for(schedule.latent_frames_for(frames)) >= frames
    for step in range(50):
        windows = schedule.windows_for_step(step, total)
        assert all(len(w) == schedule.LATENT_WINDOW for w in windows)
        assert all(len(set(w)) == len(w) for w in windows)  # no frame twice in one window
        covered = set().union(*map(set, windows))
        assert covered == set(range(total)), f"{seconds} s step {step}"
        # windows are consecutive runs (mod the clip length), so temporal attention sees neighbours
        for w in windows:
            assert all((b - a) % total == 1 for a, b in itertools.pairwise(w))


def test_windows_shift_by_ten_frames_per_step_for_long_clips():
    total = 66
    assert schedule.windows_for_step(0, total)[0][0] == 0
    assert schedule.windows_for_step(1, total)[0][0] == total - 10
    assert schedule.windows_for_step(2, total)[0][0] == total - 20
    assert schedule.windows_for_step(4, total)[0][0] == total - 7  # 40 % 33 = 7
    # a single-window clip never shifts
    assert [schedule.windows_for_step(s, 33) for s in range(5)] == [[list(range(33))]] * 5


def test_audio_frames_follow_their_latent_window():
    total = 40
    # window starting at latent 0: audio frames 0 .. 128 (latent 0 <- frame 0, latent k <- 4k-3 .. 4k)
    assert schedule.audio_frames_for_window(0, total) == list(range(129))
    # window starting at latent 5: audio 20 .. 148
    assert schedule.audio_frames_for_window(5, total) == list(range(20, 149))
    # wrapping: starting at latent 35 of 40 the audio runs 140 .. 159 then 0 ..
    frames = schedule.audio_frames_for_window(35, total)
    assert frames[:20] == list(range(140, 160)) and frames[20:23] == [0, 1, 2]
    assert len(frames) == 129


# --- whisper windows -------------------------------------------------------------------------------
def test_whisper_window_indices_hand_computed():
    idx = schedule.whisper_token_indices(3)
    assert idx.tolist() == [list(range(10)), list(range(2, 12)), list(range(4, 14))]
    assert schedule.whisper_tokens_needed(3) == 14


def test_whisper_windows_take_tokens_centred_on_each_frame():
    """Tokens numbered 1..N (value = original index + 1); frame f must read original tokens
    2f-4 .. 2f+5, with zeros before the start and past the end."""
    from avatarbot.avatar.hunyuan.conditioning import window_tokens

    tokens = torch.arange(1, 21, dtype=torch.float32)[:, None]  # 20 tokens = 0.4 s
    windows = window_tokens(tokens, num_frames=12)[..., 0]
    assert windows.shape == (12, 10)
    assert windows[0].tolist() == [0, 0, 0, 0, 1, 2, 3, 4, 5, 6]  # frame 0: tokens -4..5
    assert windows[3].tolist() == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12]  # frame 3: tokens 2..11
    assert windows[9].tolist() == [15, 16, 17, 18, 19, 20, 0, 0, 0, 0]  # frame 9: tokens 14..23
    assert windows[11].tolist() == [19, 20] + [0] * 8


def test_whisper_chunks_split_long_audio_into_30_second_pieces():
    rate = schedule.WHISPER_SAMPLE_RATE
    assert schedule.whisper_chunks(rate * 10) == [(0, rate * 10)]
    assert schedule.whisper_chunks(rate * 61) == [(0, rate * 30), (rate * 30, rate * 60), (rate * 60, rate * 61)]


def test_a_long_audio_gives_features_for_every_frame_past_30_seconds():
    """A tiny whisper encoder on 31 s of audio: the token stream spans both 30 s pieces, so the
    frames after 30 s see real (non-zero) features, unlike upstream's cut."""
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    from avatarbot.avatar.hunyuan.conditioning import WhisperAudioEncoder

    config = WhisperConfig(d_model=8, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=8,
                           decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=8, vocab_size=8,
                           pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)  # fmt: skip
    encoder = WhisperAudioEncoder(WhisperFeatureExtractor(), WhisperModel(config).encoder.eval())
    rate = schedule.WHISPER_SAMPLE_RATE
    t = np.arange(31 * rate) / rate
    audio = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    stream = encoder.token_stream(audio)
    assert stream.shape == (2 * schedule.WHISPER_TOKENS_PER_CHUNK, 2, 8)
    features = encoder.frame_features(audio, frame_count_for(31))
    assert features.shape == (775, 10, 2, 8)
    assert features[770].abs().sum() > 0


# --- noise schedule, guidance, cache ----------------------------------------------------------------
def test_flow_sigmas_shifted_towards_noise():
    sigmas = schedule.flow_sigmas(50)
    assert sigmas[0] == pytest.approx(1.0) and sigmas[-1] == pytest.approx(0.0)
    assert np.all(np.diff(sigmas) < 0)
    assert sigmas[25] == pytest.approx(5 * 0.5 / (1 + 4 * 0.5))  # shift 5 at t = 0.5 -> 0.8333
    assert schedule.flow_timesteps(50)[0] == pytest.approx(1000.0)


def test_euler_step_moves_along_the_velocity():
    x = torch.ones(3)
    assert torch.equal(schedule.euler_step(x, torch.full((3,), 2.0), 1.0, 0.75), torch.full((3,), 0.5))


def test_guidance_phases_match_the_official_sampler():
    first = schedule.guidance_for_step(0, 50, 7.5)
    assert first == schedule.GuidancePhase(scale=7.5, text_guidance=True, face_mask_scale=0.6)
    ninth = schedule.guidance_for_step(9, 50, 7.5)
    assert ninth.text_guidance and ninth.scale == pytest.approx((1 - 9 / 50) * 5.5 + 2)
    tenth = schedule.guidance_for_step(10, 50, 7.5)
    assert not tenth.text_guidance and tenth.face_mask_scale == 1.0
    assert tenth.scale == pytest.approx((1 - 10 / 50) * 3.0 + 3.5)  # 5.9
    last = schedule.guidance_for_step(49, 50, 7.5)
    assert last.scale == pytest.approx(3.56)
    # other step counts keep the first fifth in phase 1
    assert [schedule.guidance_for_step(s, 20).text_guidance for s in range(5)] == [True] * 4 + [False]


def test_apply_guidance():
    assert schedule.apply_guidance(torch.tensor(1.0), torch.tensor(3.0), 2.0) == 5.0


def test_full_steps_are_the_official_cache_schedule_for_50_steps():
    official = set(range(15)) | set(range(15, 42, 5)) | set(range(41, 50))
    assert schedule.full_steps(50) == official
    assert len(official) == 30
    for n in (1, 4, 10, 25, 30, 100):
        full = schedule.full_steps(n)
        assert 0 in full and n - 1 in full and full <= set(range(n))
        # cached steps never fall in guidance phase 1 (the text branch changes there)
        assert all(s >= schedule.text_phase_steps(n) for s in set(range(n)) - full)


# --- sizes, masks, motion ----------------------------------------------------------------------------
def test_render_size_buckets():
    """Hand-computed with the official rule: short side to the bucket, sides to multiples of 64,
    area capped at bucket x long side (then rescaled by the square root of the excess)."""
    assert schedule.render_size(1024, 1024, 704) == (704, 704)
    # 720x1280 -> 512x896 would exceed 512*768, so scale sqrt(512*768 / (720*1280)) = 0.653
    assert schedule.render_size(720, 1280, 512) == (448, 832)
    assert schedule.render_size(720, 1280, 704) == (704, 1216)
    assert schedule.render_size(3000, 1000, 384) == (832, 256)
    assert schedule.render_size(80, 64, 64) == (64, 64)


def test_face_mask_box_grows_three_times_and_clips():
    assert schedule.face_mask_box((40, 40, 60, 60), 200, 100) == (20, 20, 80, 80)
    assert schedule.face_mask_box((0, 0, 50, 50), 100, 100) == (0, 0, 100, 100)
    assert schedule.face_mask_box(None, 64, 48) == (0, 0, 64, 48)


def test_motion_buckets():
    assert schedule.motion_buckets(1.0) == (30.0, 25.0)
    assert schedule.motion_buckets(0.0) == (30.0, 0.0)
    assert schedule.motion_buckets(5.0) == (30.0, 50.0)


def test_package_weights_check_and_schedule_import_without_torch():
    """`avatarbot doctor` and the bots may ask about weights on machines without the gpu extra."""
    import subprocess
    import sys

    code = (
        "import sys, avatarbot.avatar.hunyuan, avatarbot.avatar.hunyuan.weights as w, "
        "avatarbot.avatar.hunyuan.schedule; w.check_weights('/nonexistent'); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
