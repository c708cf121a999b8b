"""Per-video-frame mouth controls from the audio, computed once with numpy before any frame.

Two channels drive the mouth:
- `opening` (0 closed .. 1 widest): loudness in the speech band. Syllables are loudness bursts
  (vowels are the loud part), so a well-shaped loudness envelope opens and closes the jaw at the
  syllable rate, which is what the eye reads as talking.
- `rounding` (-1 spread .. +1 rounded): where the speech-band energy sits. Rounded vowels ("oo",
  "oh") keep their energy low (low F1 and F2); spread ones ("ee") and sibilants push it high. The
  spectral centroid relative to the speaker's own median is a cheap, language-free viseme hint.

A third, slow channel (`activity`) follows speech over about a second, for head nods.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatarbot.avatar.engine import FPS

SPEECH_BAND_HZ = (300.0, 3400.0)  # the telephone band: where intelligibility (and jaw motion) lives
WINDOW_S = 0.064  # analysis window per video frame (a little longer than one 40 ms frame)
LEAD_S = 0.04  # lips move slightly before the sound they make, so look a little ahead
DYNAMIC_RANGE_DB = 30.0  # loudness below (loud reference - this) keeps the mouth closed
LOUD_PERCENTILE = 92  # the "fully open" reference, robust to a few shouted peaks
ABSOLUTE_SILENCE_DB = -55.0  # speech-band level (dBFS) under which nothing is said, however quiet the file
ATTACK = 0.65  # per-frame smoothing while opening: fast, but a jaw takes ~2 frames to open
RELEASE = 0.5  # per-frame smoothing while closing (a little slower: jaws do not snap shut)
CLOSED_BELOW = 0.03  # openings smaller than this are snapped shut, so silence is exactly zero
ROUNDING_SMOOTH = 0.5  # per-frame smoothing of the rounding channel (visemes change smoothly)
MIN_ROUNDING_SPREAD_OCTAVES = 0.25  # a monotone clip must not swing the lips at random
ACTIVITY_SECONDS = 0.8  # time constant of the slow speech-activity channel


@dataclass(frozen=True)
class MouthControls:
    opening: np.ndarray  # (frames,) float32 in [0, 1]
    rounding: np.ndarray  # (frames,) float32 in [-1, 1]
    activity: np.ndarray  # (frames,) float32 in [0, 1], slow

    def __len__(self) -> int:
        return len(self.opening)


def mouth_controls(samples: np.ndarray, sample_rate: int, frame_count: int, fps: int = FPS) -> MouthControls:
    """The mouth channels for `frame_count` video frames of `samples` (mono float)."""
    spectra, freqs, power_to_dbfs = _frame_spectra(
        samples.astype(np.float32, copy=False), sample_rate, frame_count, fps
    )
    band = (freqs >= SPEECH_BAND_HZ[0]) & (freqs <= SPEECH_BAND_HZ[1])
    band_power = spectra[:, band]
    energy = band_power.sum(axis=1)

    level_db = 10.0 * np.log10(energy * power_to_dbfs + 1e-12)
    opening = _normalised_opening(level_db)
    opening = _attack_release(opening, ATTACK, RELEASE)
    opening[opening < CLOSED_BELOW] = 0.0

    centroid = (band_power * freqs[band]).sum(axis=1) / np.maximum(energy, 1e-12)
    rounding = _rounding(np.log2(np.maximum(centroid, 1.0)), voiced=opening > 0.15)
    rounding = _attack_release(rounding, ROUNDING_SMOOTH, ROUNDING_SMOOTH) * np.minimum(1.0, opening * 3)

    activity = _attack_release((opening > 0.1).astype(np.float32), *(2 * [1 - np.exp(-1 / (ACTIVITY_SECONDS * fps))]))
    return MouthControls(opening.astype(np.float32), rounding.astype(np.float32), activity.astype(np.float32))


def _frame_spectra(samples: np.ndarray, sample_rate: int, frame_count: int, fps: int):
    """Power spectra of one window per video frame, centred on the frame's middle (+ lead),
    with the factor that turns a band's summed power into dBFS."""
    window = max(16, round(WINDOW_S * sample_rate))
    centres = ((np.arange(frame_count) + 0.5) / fps + LEAD_S) * sample_rate
    starts = np.round(centres - window / 2).astype(np.int64)
    padded = np.concatenate([np.zeros(window, np.float32), samples, np.zeros(2 * window, np.float32)])
    starts = np.clip(starts + window, 0, len(padded) - window)
    frames = np.lib.stride_tricks.sliding_window_view(padded, window)[starts]
    taper = np.hanning(window).astype(np.float32)
    spectra = np.abs(np.fft.rfft(frames * taper, axis=1)) ** 2
    # Parseval: half-spectrum power -> mean square of the band's signal, relative to a
    # full-scale sine (mean square 1/2), so levels read as dBFS.
    power_to_dbfs = 2.0 / (window * float((taper**2).sum())) / 0.5
    return spectra, np.fft.rfftfreq(window, 1.0 / sample_rate), power_to_dbfs


def _normalised_opening(level_db: np.ndarray) -> np.ndarray:
    """Loudness to 0..1 relative to this recording's own loud level, so a quiet voice note and a
    loud song both use the whole range; an all-silent file stays closed."""
    loud = float(np.percentile(level_db, LOUD_PERCENTILE))
    if loud < ABSOLUTE_SILENCE_DB:
        return np.zeros_like(level_db)
    floor = max(loud - DYNAMIC_RANGE_DB, ABSOLUTE_SILENCE_DB)
    opening = np.clip((level_db - floor) / (loud - floor), 0.0, 1.0)
    # Loudness in dB is already compressed; a gentle power curve keeps quiet consonants small
    # while vowels open wide.
    return opening**1.6


def _rounding(log_centroid: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    """Centroid (in octaves) against the middle of this speaker's own range, so a deep and a
    high voice both span -1..1. The range's midpoint, not the median: a clip that is mostly one
    vowel must still show the other one."""
    if voiced.sum() < 3:
        return np.zeros_like(log_centroid)
    low, high = np.percentile(log_centroid[voiced], [10, 90])
    middle, spread = (low + high) / 2, max((high - low) / 2, MIN_ROUNDING_SPREAD_OCTAVES)
    return np.tanh(-(log_centroid - middle) / spread) * voiced


def _attack_release(x: np.ndarray, attack: float, release: float) -> np.ndarray:
    """One-pole smoothing with separate rise and fall rates (0 = frozen, 1 = no smoothing).
    A Python loop, but over frames (250 for 10 s), not samples."""
    out = np.empty(len(x), np.float32)
    state = 0.0
    for i, value in enumerate(x.tolist()):
        rate = attack if value > state else release
        state += rate * (value - state)
        out[i] = state
    return out
