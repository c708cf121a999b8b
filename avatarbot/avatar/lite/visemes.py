"""Mouth shapes (visemes) per video frame: the targets, how phonemes map to them, and how
neighbouring shapes blend (co-articulation).

A viseme here is two numbers: `gap`, the inner-lip opening (0 lips together .. 1 widest "aa"),
and `width`, the mouth's width change (-1 rounded "oo" .. +1 spread "ee"). The values are ours,
set by eye against the mouth shapes phoneticians describe for each class: lips closed for p/b/m,
lower lip to the upper teeth for f/v, spread for "ee", rounded for "oo", open for "aa".

Two sources give per-frame visemes: the phoneme timings of synthesised speech (exact), or the
spectral classifier in `speech.py` for recordings. Both end in `coarticulate`, which smooths the
shapes into each other and then puts back the closures that must not be smoothed away.
"""

from __future__ import annotations

import numpy as np

from avatarbot.media.types import Phoneme

# name: (gap, width)
VISEMES = {
    "rest": (0.0, 0.0),
    "closed": (0.0, 0.0),  # p b m
    "lip_teeth": (0.06, 0.15),  # f v: lower lip tucked to the upper teeth
    "ee": (0.28, 1.0),
    "ih": (0.42, 0.6),
    "eh": (0.6, 0.35),
    "aa": (1.0, 0.1),
    "ah": (0.62, 0.0),  # schwa, "uh"
    "oh": (0.62, -0.65),
    "oo": (0.22, -1.0),
    "w": (0.12, -1.0),
    "sh": (0.14, -0.6),  # sh, zh, ch, j: lips pushed forward
    "s": (0.1, 0.45),  # s, z: teeth nearly together, lips spread
    "th": (0.18, 0.2),
    "t": (0.24, 0.2),  # t d n l: tongue tip, jaw half closed
    "k": (0.32, 0.05),  # k g ng h and the like: jaw open, lips neutral
    "r": (0.22, -0.45),
}

# espeak-ng's English phoneme mnemonics (`espeak-ng -x`) to visemes. Longest prefix wins; stress
# and length marks are ignored. Other languages' vowels fall back on their first letter.
_PREFIXES = {
    "_": "rest",
    "p": "closed",
    "b": "closed",
    "m": "closed",
    "f": "lip_teeth",
    "v": "lip_teeth",
    "w": "w",
    "tS": "sh",
    "dZ": "sh",
    "S": "sh",
    "Z": "sh",
    "s": "s",
    "z": "s",
    "T": "th",
    "D": "th",
    "t": "t",
    "d": "t",
    "n": "t",
    "l": "t",
    "k": "k",
    "g": "k",
    "N": "k",
    "x": "k",
    "h": "k",
    "j": "ih",
    "r": "r",
    "i": "ee",
    "I": "ih",
    "e": "eh",
    "eI": "ih",
    "E": "eh",
    "a": "aa",
    "A": "aa",
    "@": "ah",
    "3": "ah",
    "V": "ah",
    "0": "oh",
    "O": "oh",
    "Q": "oh",
    "o": "oh",
    "u": "oo",
    "U": "oo",
    "y": "oo",
}

FPS_LEAD_S = 0.04  # lips get ready slightly before the sound: look this far ahead
COARTICULATION_FRAMES = 0.9  # Gaussian sigma of the shape blending, in frames (36 ms at 25 fps)
CLOSURE_RAMP = 0.4  # away from a closure the opening may grow by this much per frame
MIN_CLOSURE_FRAMES = 2  # lips stay shut at least this long for p/b/m (real closures last 60-120 ms)
LONG_PAUSE_S = 0.3  # pauses at least this long close the mouth all the way


def viseme_of(symbol: str) -> str:
    core = symbol.strip("'\",%=:;!")
    for length in (2, 1):
        name = _PREFIXES.get(core[:length])
        if name is not None:
            return name
    return "ah" if core else "rest"


def from_phonemes(phonemes: tuple[Phoneme, ...], frame_count: int, fps: int) -> tuple[np.ndarray, ...]:
    """(gap, width, closed) per frame from phoneme timings; `closed` marks frames that must show
    shut lips (bilabials and long pauses)."""
    times = (np.arange(frame_count) + 0.5) / fps + FPS_LEAD_S
    gap = np.zeros(frame_count, np.float32)
    width = np.zeros(frame_count, np.float32)
    closed = np.zeros(frame_count, bool)
    names = [viseme_of(p.symbol) for p in phonemes]
    for phoneme, name in zip(phonemes, names, strict=True):
        inside = (times >= phoneme.start) & (times < phoneme.end)
        if name == "closed" and inside.sum() < MIN_CLOSURE_FRAMES:  # too short to see: widen
            middle = (phoneme.start + phoneme.end) / 2 * fps - 0.5 - FPS_LEAD_S * fps
            first = int(np.clip(np.floor(middle - (MIN_CLOSURE_FRAMES - 1) / 2), 0, frame_count - 1))
            inside[first : first + MIN_CLOSURE_FRAMES] = True
        gap[inside], width[inside] = VISEMES[name]
        if name == "closed":
            closed |= inside
    # Long pauses, and any time outside the phonemes (before the first, after the last).
    spoken = np.zeros(frame_count, bool)
    for phoneme, name in zip(phonemes, names, strict=True):
        if name != "rest":
            spoken |= (times >= phoneme.start) & (times < phoneme.end)
    closed |= long_runs(~spoken, LONG_PAUSE_S * fps)
    return gap, width, closed


def coarticulate(gap: np.ndarray, width: np.ndarray, closed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Blend neighbouring shapes, then close the lips fully where `closed`, opening from there no
    faster than the jaw can."""
    from avatarbot.avatar.lite.motion import gaussian_smooth

    gap = gaussian_smooth(gap, COARTICULATION_FRAMES)
    width = gaussian_smooth(width, COARTICULATION_FRAMES)
    if closed.any():
        gap = np.minimum(gap, CLOSURE_RAMP * frames_to_nearest(closed))
    return np.clip(gap, 0.0, 1.0).astype(np.float32), np.clip(width, -1.0, 1.0).astype(np.float32)


def frames_to_nearest(mask: np.ndarray) -> np.ndarray:
    """Per frame, how many frames away the nearest True of `mask` is (huge when there is none)."""
    index = np.arange(len(mask))
    far = 10**9
    before = index - np.maximum.accumulate(np.where(mask, index, -far))
    after = np.minimum.accumulate(np.where(mask, index, far)[::-1])[::-1] - index
    return np.minimum(before, after)


def long_runs(mask: np.ndarray, min_length: float) -> np.ndarray:
    """The parts of `mask` that are runs of True at least `min_length` long."""
    out = np.zeros_like(mask)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        if end - start >= min_length:
            out[start:end] = True
    return out
