"""The arithmetic of a HunyuanVideo-Avatar render, as small pure functions.

Everything here is plain Python/numpy (no torch), so tests can check each rule by hand: which
latent frames a denoising window covers at each step, which audio frames and whisper tokens go
with them, how strong guidance is at each step, which steps may reuse the cached transformer
output, and the noise schedule. The numbers follow the official HunyuanVideo-Avatar recipe; where
we go past it (clips longer than 16 s, step counts other than 50) the rule is generalised and the
docstring says how.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# The causal 3D VAE: 4 video frames per latent frame after the first, 8 pixels per latent pixel.
VAE_TIME_STRIDE = 4
VAE_SPACE_STRIDE = 8
# The transformer patchifies 2x2 latent pixels into one token.
PATCH_SIZE = 2

# Denoising runs on windows of 33 latent frames (129 video frames, the length the model was
# trained on); each step the windows move by 10 frames so no seam stays in one place.
LATENT_WINDOW = 33
WINDOW_SHIFT = 10
LONG_CLIP_PAD_FRAMES = 5  # silent audio frames upstream appends to a clip longer than one window

# Whisper gives 50 tokens per second, 2 per video frame at 25 fps. Frame f sees a 10-token window
# that starts 4 tokens before it (the token stream is padded with 4 zero tokens in front).
WHISPER_TOKENS_PER_FRAME = 2
WHISPER_WINDOW = 10
WHISPER_LEAD = 4
WHISPER_SAMPLE_RATE = 16_000
WHISPER_CHUNK_SECONDS = 30  # whisper's encoder takes exactly 30 s of audio at a time
WHISPER_TOKENS_PER_CHUNK = 1500

# Flow-matching schedule and the two-phase guidance of the official sampler.
FLOW_SHIFT = 5.0
NUM_TRAIN_TIMESTEPS = 1000
DEFAULT_GUIDANCE = 7.5
TEXT_GUIDANCE_FLOOR = 2.0  # phase 1 scale falls from `guidance` towards this
AUDIO_GUIDANCE_RANGE = (6.5, 3.5)  # phase 2 scale falls from the first towards the second
TEXT_PHASE_FRACTION = 0.2  # phase 1 is the first 10 of 50 steps
PHASE1_FACE_MASK_SCALE = 0.6  # the audio adapters act at 60 % strength while the text still steers

# Long side allowed for each short-side bucket (the official preprocessing caps the pixel area).
SIZE_BUCKET_LONG_SIDE = {704: 1216, 512: 768, 384: 576, 256: 384}
SIZE_MULTIPLE = 64
FACE_MASK_AREA = 3.0  # the face box is grown 3x in width and height around its centre


# --- frames ------------------------------------------------------------------------------------
def latent_frames_for(video_frames: int) -> int:
    """Latent frames the causal VAE needs to decode at least `video_frames` frames."""
    if video_frames < 1:
        raise ValueError("need at least one video frame")
    return math.ceil((video_frames - 1) / VAE_TIME_STRIDE) + 1


def video_frames_for(latent_frames: int) -> int:
    """Video frames the causal VAE decodes from `latent_frames` latent frames."""
    return VAE_TIME_STRIDE * (latent_frames - 1) + 1


def padded_audio_frames(video_frames: int, window: int = LATENT_WINDOW) -> int:
    """How many audio frames upstream's sampler treats the clip as having (A below): a clip that
    fits one window is padded to the window (129 frames), a longer one gets 5 silent frames more.
    Upstream: hymm_sp/sample_inference_audio.py, where `audio_prompts` is padded before the
    pipeline call."""
    one_window = video_frames_for(window)
    return one_window if video_frames <= one_window else video_frames + LONG_CLIP_PAD_FRAMES


def denoise_length(video_frames: int, window: int = LATENT_WINDOW) -> int:
    """Latent frames of the loop the windows run over, exactly as upstream
    (hymm_sp/diffusion/pipelines/pipeline_hunyuan_video_audio.py, `infer_length`):
    one window for a clip of at most 129 frames, else (A // 128 + 1) * 32 + 1 with A the padded
    audio length. The loop is longer than the clip: a window that wraps past the clip's end sees
    silent-audio latents before it reaches the start again. For windows other than 33 (tests),
    128 and 32 are 4 * (window - 1) and window - 1."""
    if video_frames <= video_frames_for(window):
        return window
    audio = padded_audio_frames(video_frames, window)
    step = window - 1
    return (audio // (VAE_TIME_STRIDE * step) + 1) * step + 1


def decoded_latents(video_frames: int, window: int = LATENT_WINDOW) -> int:
    """Latent frames upstream decodes (its `video_length`): A // 4 + 1, 33 for a short clip. The
    VAE's mid-block attention sees every decoded frame, so decoding fewer would change the
    frames we keep; the video is cut to the clip's length after decoding."""
    return padded_audio_frames(video_frames, window) // VAE_TIME_STRIDE + 1


# --- sliding windows ---------------------------------------------------------------------------
def window_offset(step: int, total_latents: int, window: int = LATENT_WINDOW, shift: int = WINDOW_SHIFT) -> int:
    """How far the windows are moved back at `step`. A clip of exactly one window is never shifted
    (there is no seam to hide)."""
    if total_latents <= window:
        return 0
    return (step * shift) % window


def windows_for_step(
    step: int, total_latents: int, window: int = LATENT_WINDOW, shift: int = WINDOW_SHIFT
) -> list[list[int]]:
    """The latent frame indices of each window denoised at `step`.

    Windows of `window` frames start every `window` frames, all moved back by `window_offset`, and
    wrap around the end of the loop (`denoise_length` frames, as upstream): together they cover
    every frame at every step; frames covered twice are averaged.
    """
    if total_latents < window:
        raise ValueError(f"a clip needs at least {window} latent frames, got {total_latents}")
    offset = window_offset(step, total_latents, window, shift)
    windows = []
    for start in range(0, total_latents, window):
        first = start - offset
        windows.append([(first + k) % total_latents for k in range(window)])
    return windows


def audio_frames_for_window(first_latent: int, total_latents: int, window: int = LATENT_WINDOW) -> list[int]:
    """Audio (video-rate) frame indices for a window whose first latent frame is `first_latent`.

    Latent frame j stands for video frames 4j-3 .. 4j (frame 0 alone for j = 0); a window of 33
    latent frames takes 129 consecutive audio frames from 4 * first_latent. The audio track is
    padded to 4 * total_latents frames, and wraps with the latents.
    """
    span = VAE_TIME_STRIDE * window - (VAE_TIME_STRIDE - 1)
    total_audio = VAE_TIME_STRIDE * total_latents
    return [(VAE_TIME_STRIDE * first_latent + k) % total_audio for k in range(span)]


# --- whisper windows ---------------------------------------------------------------------------
def whisper_token_indices(num_frames: int) -> np.ndarray:
    """(num_frames, 10) indices into the whisper token stream *after* 4 zero tokens are prepended:
    frame f takes tokens [2f, 2f + 10), i.e. original tokens 2f - 4 .. 2f + 5, centred on it."""
    starts = np.arange(num_frames) * WHISPER_TOKENS_PER_FRAME
    return starts[:, None] + np.arange(WHISPER_WINDOW)[None, :]


def whisper_tokens_needed(num_frames: int) -> int:
    """Length of the padded token stream that `whisper_token_indices(num_frames)` reads."""
    return WHISPER_TOKENS_PER_FRAME * (num_frames - 1) + WHISPER_WINDOW


def whisper_chunks(num_samples: int, sample_rate: int = WHISPER_SAMPLE_RATE) -> list[tuple[int, int]]:
    """Sample ranges of the 30 s pieces whisper encodes one at a time (the last may be short and
    is padded with silence by the feature extractor). Upstream encodes only the first piece, which
    is why it stops at 30 s; we encode them all and join the token streams."""
    chunk = WHISPER_CHUNK_SECONDS * sample_rate
    return [(start, min(start + chunk, num_samples)) for start in range(0, max(num_samples, 1), chunk)]


# --- noise schedule and guidance -----------------------------------------------------------------
def flow_sigmas(num_steps: int, shift: float = FLOW_SHIFT) -> np.ndarray:
    """The num_steps + 1 noise levels, 1 -> 0, bent towards high noise by `shift` (SD3 style)."""
    if num_steps < 1:
        raise ValueError("need at least one step")
    s = np.linspace(1.0, 0.0, num_steps + 1)
    return shift * s / (1 + (shift - 1) * s)


def flow_timesteps(num_steps: int, shift: float = FLOW_SHIFT) -> np.ndarray:
    """The model's timestep input at each step (sigma scaled to 0..1000)."""
    return flow_sigmas(num_steps, shift)[:-1] * NUM_TRAIN_TIMESTEPS


def euler_step(sample, velocity, sigma: float, sigma_next: float):
    """One flow-matching Euler step: move along the predicted velocity to the next noise level."""
    return sample + (sigma_next - sigma) * velocity


@dataclass(frozen=True)
class GuidancePhase:
    scale: float
    text_guidance: bool  # True: the unconditional branch drops the prompt too (negative prompt)
    face_mask_scale: float  # how strongly the audio adapters write into the face region


def text_phase_steps(num_steps: int) -> int:
    """Steps in guidance phase 1: 10 of 50 upstream, the same fifth for other step counts."""
    return max(1, round(num_steps * TEXT_PHASE_FRACTION))


def guidance_for_step(step: int, num_steps: int, guidance: float = DEFAULT_GUIDANCE) -> GuidancePhase:
    """The official two-phase classifier-free guidance.

    Phase 1 (early steps, composition): text + audio guidance, the unconditional branch has the
    negative prompt and silent audio; the scale falls linearly from `guidance` towards 2, and the
    audio adapters act at 60 %. Phase 2: audio-only guidance (both branches see the prompt, only
    the audio differs), scale falling from 6.5 towards 3.5.
    """
    progress = step / num_steps
    if step < text_phase_steps(num_steps):
        scale = (1 - progress) * (guidance - TEXT_GUIDANCE_FLOOR) + TEXT_GUIDANCE_FLOOR
        return GuidancePhase(scale=scale, text_guidance=True, face_mask_scale=PHASE1_FACE_MASK_SCALE)
    high, low = AUDIO_GUIDANCE_RANGE
    return GuidancePhase(scale=(1 - progress) * (high - low) + low, text_guidance=False, face_mask_scale=1.0)


def apply_guidance(uncond, cond, scale: float):
    return uncond + scale * (cond - uncond)


# --- step cache ----------------------------------------------------------------------------------
CACHE_HEAD_FRACTION = 0.3  # the first 15 of 50 steps always run in full
CACHE_TAIL_FRACTION = 0.82  # and the last 9 of 50 (from step 41)
CACHE_REFRESH_INTERVAL = 5  # in between, one full step in five refreshes the cache


def full_steps(num_steps: int) -> set[int]:
    """Steps that run the whole transformer. The others reuse the input of the last single-stream
    block cached at the latest full step and run only that block. For 50 steps this is the
    official list: 0-14, 15, 20, ..., 40, 41-49 (30 full, 20 cached)."""
    head_end = round(num_steps * CACHE_HEAD_FRACTION)
    tail_start = round(num_steps * CACHE_TAIL_FRACTION)
    full = set(range(max(head_end, 1)))
    full.update(range(head_end, tail_start + 1, CACHE_REFRESH_INTERVAL))
    full.update(range(tail_start, num_steps))
    return {step for step in full if step < num_steps}


# --- sizes and masks -----------------------------------------------------------------------------
def render_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) of the render: the short side scaled to `short_side`, both sides rounded to
    multiples of 64, and the area capped at the bucket's short x long side."""
    scale = short_side / min(width, height)
    new_w = max(SIZE_MULTIPLE, round(width * scale / SIZE_MULTIPLE) * SIZE_MULTIPLE)
    new_h = max(SIZE_MULTIPLE, round(height * scale / SIZE_MULTIPLE) * SIZE_MULTIPLE)
    long_side = SIZE_BUCKET_LONG_SIDE.get(short_side, int(short_side * 1.5))
    if new_w * new_h > short_side * long_side:
        scale = math.sqrt(short_side * long_side / (width * height))
        new_w = max(SIZE_MULTIPLE, round(width * scale / SIZE_MULTIPLE) * SIZE_MULTIPLE)
        new_h = max(SIZE_MULTIPLE, round(height * scale / SIZE_MULTIPLE) * SIZE_MULTIPLE)
    return new_w, new_h


def face_mask_box(
    box: tuple[float, float, float, float] | None, width: int, height: int, area: float = FACE_MASK_AREA
) -> tuple[int, int, int, int]:
    """The region (x0, y0, x1, y1) where audio may move the picture: the face box grown `area`
    times around its centre, clipped to the frame; the whole frame when no face was found.
    Upstream's arithmetic (hymm_sp/data_kits/audio_preprocessor.py `get_facemask`): the centre
    and the half sizes are floor-divided, the bounds truncated to pixels."""
    if box is None:
        return 0, 0, width, height
    x0, y0, x1, y1 = box
    grown_w, grown_h = (x1 - x0) * area, (y1 - y0) * area
    cx, cy = (x1 + x0) // 2, (y1 + y0) // 2
    return (
        int(max(cx - grown_w // 2, 0)),
        int(max(cy - grown_h // 2, 0)),
        int(min(cx + grown_w // 2, width)),
        int(min(cy + grown_h // 2, height)),
    )


def motion_buckets(motion: float) -> tuple[float, float]:
    """(expression, head-pose) bucket values for the head-motion intensity 0..2. Upstream
    hard-codes expression 30 and pose 25. We keep the expression bucket (lips and face must move
    with the audio whatever the setting) and scale the pose bucket: 1 gives upstream's 25."""
    motion = min(max(motion, 0.0), 2.0)
    return 30.0, 25.0 * motion
