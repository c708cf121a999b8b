"""Seeded, per-frame curves for everything that moves besides the mouth: blinks and the head.

All of it is drawn up front from `options.seed`, so the same seed gives the same clip and a
different seed a different one. Each curve has its own random stream (seed, purpose), so tuning
one never reshuffles the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatarbot.avatar.engine import FPS

# People blink every 2-6 s; one blink takes ~150 ms, closing faster than it opens.
BLINK_INTERVAL_S = (2.0, 6.0)
FIRST_BLINK_S = (0.6, 3.0)
BLINK_SHAPE = (0.55, 1.0, 0.7, 0.25)  # lid closure on consecutive frames at 25 fps (~160 ms)

# Head motion at motion=1.0, as standard deviations of smooth noise. Distances are in units of
# the inter-ocular distance, so a close-up and a far-away face move alike.
ROLL_DEG = 1.5  # rotation about the neck
SWAY_IOD = (0.05, 0.03)  # sideways, up-down drift
NOD_IOD = 0.07  # extra downward dip while speaking, following the loudness
NOISE_TIMESCALE_S = 0.7  # how slowly the head drifts: a Gaussian smoothing of white noise
NOD_SMOOTH_S = 0.18  # the nod follows syllable groups, not single syllables
SPEAKING_LIVELINESS = 0.5  # heads move this much more while talking than while listening

_STREAM_BLINK, _STREAM_HEAD = 1, 2


@dataclass(frozen=True)
class HeadMotion:
    roll: np.ndarray  # (frames,) radians, about the neck
    shift_x: np.ndarray  # (frames,) in units of inter-ocular distance
    shift_y: np.ndarray  # (frames,) same units, positive = down


def blink_curve(frame_count: int, seed: int, fps: int = FPS) -> np.ndarray:
    """Lid closure per frame, 0 open .. 1 shut."""
    rng = np.random.default_rng([seed, _STREAM_BLINK])
    closure = np.zeros(frame_count, np.float32)
    t = rng.uniform(*FIRST_BLINK_S)
    while True:
        start = round(t * fps)
        if start >= frame_count:
            break
        shape = np.asarray(BLINK_SHAPE, np.float32)[: frame_count - start]
        closure[start : start + len(shape)] = shape
        t += rng.uniform(*BLINK_INTERVAL_S)
    return closure


def head_motion(
    frame_count: int, seed: int, motion: float, opening: np.ndarray, activity: np.ndarray, fps: int = FPS
) -> HeadMotion:
    """Drifting roll and sway, livelier while speaking, plus a small nod on loud stretches."""
    rng = np.random.default_rng([seed, _STREAM_HEAD])
    liveliness = motion * (1.0 - SPEAKING_LIVELINESS / 2 + SPEAKING_LIVELINESS * activity)
    roll = np.deg2rad(ROLL_DEG) * smooth_noise(rng, frame_count, NOISE_TIMESCALE_S * fps) * liveliness
    shift_x = SWAY_IOD[0] * smooth_noise(rng, frame_count, NOISE_TIMESCALE_S * fps) * liveliness
    drift_y = SWAY_IOD[1] * smooth_noise(rng, frame_count, NOISE_TIMESCALE_S * fps) * liveliness
    nod = NOD_IOD * motion * gaussian_smooth(opening, NOD_SMOOTH_S * fps)
    return HeadMotion(roll.astype(np.float32), shift_x.astype(np.float32), (drift_y + nod).astype(np.float32))


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
