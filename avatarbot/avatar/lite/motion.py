"""Seeded, per-frame curves for everything that moves besides the mouth: blinks and the head.

All of it is drawn up front from `options.seed`, so the same seed gives the same clip and a
different seed a different one. Each curve has its own random stream (seed, purpose), so tuning
one never reshuffles the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatarbot.avatar.engine import FPS

# People blink every 2-10 s at rest (a gamma-like spread around ~3.5 s), more often right after a
# phrase, and each blink takes 120-250 ms, closing faster than it opens; some don't fully close.
BLINK_MEAN_S = 3.5
BLINK_SHAPE_GAMMA = 3.0  # shape of the interval distribution (1 = memoryless, larger = steadier)
BLINK_INTERVAL_CLIP_S = (1.2, 9.0)
FIRST_BLINK_S = (0.5, 2.5)
PHRASE_END_BLINK_CHANCE = 0.7
BLINK_REFRACTORY_S = 1.0  # no blink again this soon
BLINK_SHAPES = (  # lid closure on consecutive frames at 25 fps
    (0.55, 1.0, 0.7, 0.25),
    (0.5, 1.0, 1.0, 0.6, 0.2),
    (0.6, 1.0, 0.8, 0.45, 0.15),
)
BLINK_DEPTH = (0.85, 1.0)

# Head motion at motion=1.0, about 3x the first lite's (measured in bench/lite_quality.py as the
# nose's travel; real speakers move 4-5x that first version). Angles in degrees, distances in units of the inter-ocular distance
# (so a close-up and a far-away face move alike); std of smooth noise unless said otherwise.
ROLL_DEG = 3.0  # rotation about the neck
YAW_DEG = 4.5  # turning left-right (2.5D)
PITCH_DEG = 2.0  # slow up-down drift of the chin (2.5D)
SWAY_IOD = (0.15, 0.08)  # sideways, up-down drift
NOD_DEG = 5.0  # chin dip on a full accent (pitch/energy peak)
NOD_SHIFT_IOD = 0.05  # the head also dips a little on a nod
NOISE_TIMESCALE_S = 0.8  # how slowly the head drifts: a Gaussian smoothing of white noise
NOD_SMOOTH_S = 0.12
SPEAKING_LIVELINESS = 0.6  # heads move this much more while talking than while listening

_STREAM_BLINK, _STREAM_HEAD = 1, 2


@dataclass(frozen=True)
class HeadMotion:
    roll: np.ndarray  # (frames,) radians, about the neck
    shift_x: np.ndarray  # (frames,) in units of inter-ocular distance
    shift_y: np.ndarray  # (frames,) same units, positive = down
    yaw: np.ndarray  # (frames,) radians
    pitch: np.ndarray  # (frames,) radians, positive = chin down
    brow: np.ndarray  # (frames,) 0..1 brow raise


def blink_curve(frame_count: int, seed: int, phrase_end: np.ndarray | None = None, fps: int = FPS) -> np.ndarray:
    """Lid closure per frame, 0 open .. 1 shut: a blink every few seconds, and often one just
    after a phrase ends."""
    rng = np.random.default_rng([seed, _STREAM_BLINK])
    duration = frame_count / fps
    times = []
    t = rng.uniform(*FIRST_BLINK_S)
    while t < duration:
        times.append(t)
        t += float(np.clip(rng.gamma(BLINK_SHAPE_GAMMA, BLINK_MEAN_S / BLINK_SHAPE_GAMMA), *BLINK_INTERVAL_CLIP_S))
    ends = [] if phrase_end is None else np.flatnonzero(phrase_end) / fps
    times += [end + rng.uniform(0.04, 0.16) for end in ends if rng.random() < PHRASE_END_BLINK_CHANCE]
    closure = np.zeros(frame_count, np.float32)
    last = -np.inf
    for t in sorted(times):
        start = round(t * fps)
        if t - last < BLINK_REFRACTORY_S or start >= frame_count:
            continue
        last = t
        shape = np.asarray(BLINK_SHAPES[rng.integers(len(BLINK_SHAPES))], np.float32) * rng.uniform(*BLINK_DEPTH)
        shape = shape[: frame_count - start]
        closure[start : start + len(shape)] = np.maximum(closure[start : start + len(shape)], shape)
    return closure


def head_motion(
    frame_count: int, seed: int, motion: float, activity: np.ndarray, accent: np.ndarray, fps: int = FPS
) -> HeadMotion:
    """Drifting roll, yaw, pitch and sway, livelier while speaking, plus nods and brow raises on
    accents."""
    rng = np.random.default_rng([seed, _STREAM_HEAD])
    liveliness = motion * (1.0 - SPEAKING_LIVELINESS / 2 + SPEAKING_LIVELINESS * activity)

    def drift(amount: float) -> np.ndarray:
        return amount * smooth_noise(rng, frame_count, NOISE_TIMESCALE_S * fps) * liveliness

    nod = gaussian_smooth(accent, NOD_SMOOTH_S * fps) * motion
    roll = np.deg2rad(drift(ROLL_DEG))
    yaw = np.deg2rad(drift(YAW_DEG))
    pitch = np.deg2rad(drift(PITCH_DEG) + NOD_DEG * nod)
    shift_x = drift(SWAY_IOD[0])
    shift_y = drift(SWAY_IOD[1]) + NOD_SHIFT_IOD * nod
    brow = np.clip(gaussian_smooth(accent, NOD_SMOOTH_S * fps) * 1.3 * min(motion, 1.0), 0.0, 1.0)
    return HeadMotion(*(a.astype(np.float32) for a in (roll, shift_x, shift_y, yaw, pitch, brow)))


def smooth_noise(rng: np.random.Generator, frame_count: int, timescale_frames: float) -> np.ndarray:
    """Unit-variance noise that drifts over `timescale_frames`: white noise through a Gaussian.
    Scaled by the filter's own gain, not by the sample's std, so short clips aren't inflated."""
    kernel = _gaussian_kernel(timescale_frames)
    white = rng.standard_normal(frame_count + len(kernel) - 1)
    return np.convolve(white, kernel, mode="valid") / np.sqrt((kernel**2).sum())


def gaussian_smooth(x: np.ndarray, sigma_frames: float) -> np.ndarray:
    kernel = _gaussian_kernel(sigma_frames)
    half = len(kernel) // 2
    padded = np.pad(np.asarray(x, np.float64), half, mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def _gaussian_kernel(sigma: float) -> np.ndarray:
    half = max(1, int(np.ceil(3 * sigma)))
    t = np.arange(-half, half + 1)
    kernel = np.exp(-0.5 * (t / max(sigma, 1e-6)) ** 2)
    return kernel / kernel.sum()
