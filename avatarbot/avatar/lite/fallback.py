"""When no face was found: the whole picture breathes, sways a little and pulses with the sound.

Honest about what it is (the clip carries a note saying no face was found) but still alive and
still in time with the audio, so the user sees their audio "landed".
"""

from __future__ import annotations

import cv2
import numpy as np

from avatarbot.avatar.engine import FPS
from avatarbot.avatar.lite.motion import gaussian_smooth, smooth_noise

# A constant zoom hides the edges that rotation and sway would otherwise pull into view; the
# reflected border behind it is only a safety net.
BASE_ZOOM = 1.03
BREATH_PERIOD_S = 4.0  # a calm breath
BREATH_ZOOM = 0.006  # at motion=1
PULSE_ZOOM = 0.01  # at full loudness, independent of motion: the picture reacts to the sound
PULSE_SMOOTH_S = 0.12  # a swell with the voice, not a jolt per syllable
SWAY_DEG = 0.35  # at motion=1, std of the rotation
SWAY_SHIFT = 0.004  # at motion=1, std of the drift, as a fraction of the short side
PIVOT_DOWN = 0.6  # the picture rocks about a point a little below the middle (a seated body)
_STREAM_SWAY = 3


def whole_image_transforms(
    width: int, height: int, opening: np.ndarray, motion: float, seed: int, fps: int = FPS
) -> np.ndarray:
    """(frames, 2, 3) affine matrices, one per frame."""
    frames = len(opening)
    rng = np.random.default_rng([seed, _STREAM_SWAY])
    t = np.arange(frames) / fps
    phase = rng.uniform(0, 2 * np.pi)
    zoom = (
        BASE_ZOOM
        + motion * BREATH_ZOOM * np.sin(2 * np.pi * t / BREATH_PERIOD_S + phase)
        + PULSE_ZOOM * gaussian_smooth(opening, PULSE_SMOOTH_S * fps)
    )
    angle = motion * SWAY_DEG * smooth_noise(rng, frames, 0.8 * fps)
    short = min(width, height)
    shift_x = motion * SWAY_SHIFT * short * smooth_noise(rng, frames, 0.8 * fps)
    shift_y = motion * SWAY_SHIFT * short * smooth_noise(rng, frames, 0.8 * fps)
    pivot = (width / 2, height * PIVOT_DOWN)
    matrices = np.empty((frames, 2, 3), np.float64)
    for i in range(frames):
        matrices[i] = cv2.getRotationMatrix2D(pivot, float(angle[i]), float(zoom[i]))
        matrices[i, :, 2] += (shift_x[i], shift_y[i])
    return matrices


def warp_whole_image(photo: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    height, width = photo.shape[:2]
    return cv2.warpAffine(photo, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
