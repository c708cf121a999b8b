"""Per-video-frame mouth and prosody controls from the audio, computed once with numpy.

The mouth follows *what* is said, not how loud: `gap` and `width` come from visemes
(`visemes.py`). Synthesised speech brings exact phoneme timings; for recordings a small spectral
classifier, written here because no downloadable model may be used, sorts each frame into:
- silence (speech-band level far below the recording's loud level),
- a closure: a short, sharp dip in level inside speech with no hiss, which is what p/b/m (and
  the other stops) sound like; the lips close there,
- a fricative: most energy above 4 kHz ("s", or "sh" when that energy sits lower),
- a vowel, placed on an open-close and a spread-rounded scale from where its energy sits: a
  high first formant (energy at 500-1000 Hz) opens the jaw ("aa"); a high second formant
  (energy at 1.8-3.4 kHz) with a low first spreads the lips ("ee"); energy kept low rounds them
  ("oo"). Both scales are relative to the speaker's own range.
Loudness does not scale the shapes (measured: a 20 % emphasis changed nothing a tracker could
see); it only decides what is silence, and in songs a short dip between loud sustained notes
holds the mouth open instead of snapping it shut.

Slow channels for the head: `activity` (talking or not, over about a second), `accent`
(pitch and energy peaks, where speakers nod and raise their brows) and `phrase_end` (frames
where speech stops for a pause; people blink there).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatarbot.avatar.engine import FPS
from avatarbot.avatar.lite.visemes import FPS_LEAD_S, LONG_PAUSE_S, VISEMES, coarticulate, from_phonemes, long_runs
from avatarbot.media.types import Audio

SPEECH_BAND_HZ = (300.0, 3400.0)
WINDOW_S = 0.064  # analysis window per video frame (a little longer than one 40 ms frame)
DYNAMIC_RANGE_DB = 30.0  # below (loud level - this) counts as silence
LOUD_PERCENTILE = 92  # the recording's "loud" reference, robust to a few shouted peaks
ABSOLUTE_SILENCE_DB = -55.0  # speech-band level (dBFS) under which nothing is said
CLOSURE_DIP_DB = 9.0  # a closure is this much quieter than speech on both sides...
CLOSURE_MAX_FRAMES = 4  # ...for at most this long (160 ms)
FRICATIVE_HF_SHARE = 0.45  # share of energy above 4 kHz that makes a frame a fricative
SH_BELOW_HZ = 4800.0  # fricative energy centred below this is "sh", above "s"
SONG_HOLD_S = (0.6, 0.25)  # after this much sound, a dip this short keeps the mouth open...
SONG_HOLD_GAP = 0.55  # ...at this share of the opening before it
PITCH_HZ = (70.0, 400.0)
VOICED_CORRELATION = 0.45  # normalised autocorrelation peak above which a frame has a pitch
ACCENT_SEMITONES = 2.0  # pitch this far above the speaker's median counts as an accent...
ACCENT_SPAN_SEMITONES = 4.0  # ...full strength this much further up
ACTIVITY_SECONDS = 0.8
PHRASE_MIN_S = 0.8  # speech at least this long, then a pause at least LONG_PAUSE_S: a phrase end


@dataclass(frozen=True)
class MouthControls:
    gap: np.ndarray  # (frames,) float32, inner-lip opening 0 .. 1
    width: np.ndarray  # (frames,) float32, -1 rounded .. +1 spread
    activity: np.ndarray  # (frames,) float32 0 .. 1, slow
    accent: np.ndarray  # (frames,) float32 0 .. 1, pitch and energy accents
    phrase_end: np.ndarray  # (frames,) bool, the first frame of a pause after a phrase

    def __len__(self) -> int:
        return len(self.gap)


def mouth_controls(audio: Audio, frame_count: int, fps: int = FPS) -> MouthControls:
    samples = audio.samples.astype(np.float32, copy=False)
    spectra, freqs, power_to_dbfs, frames = _frame_spectra(samples, audio.sample_rate, frame_count, fps)
    band = (freqs >= SPEECH_BAND_HZ[0]) & (freqs <= SPEECH_BAND_HZ[1])
    level_db = 10.0 * np.log10(spectra[:, band].sum(axis=1) * power_to_dbfs + 1e-12)
    loud_db = float(np.percentile(level_db, LOUD_PERCENTILE))
    floor_db = max(loud_db - DYNAMIC_RANGE_DB, ABSOLUTE_SILENCE_DB)
    sounding = (level_db > floor_db) & (loud_db > ABSOLUTE_SILENCE_DB)
    loudness = np.clip((level_db - floor_db) / max(loud_db - floor_db, 1e-6), 0.0, 1.0) * sounding

    if audio.phonemes:
        gap, width, closed = from_phonemes(audio.phonemes, frame_count, fps)
        closed |= long_runs(~sounding, LONG_PAUSE_S * fps)
    else:
        gap, width, closed = _classify(spectra, freqs, level_db, sounding, fps)
    held = _song_hold(sounding, fps)
    if held.any():  # the opening of the last sounding frame, held at a share
        index = np.arange(frame_count)
        last_sounding = np.maximum.accumulate(np.where(sounding, index, 0))
        gap[held] = SONG_HOLD_GAP * gap[last_sounding[held]]
    silent = ~sounding & ~held
    gap[silent] = 0.0
    gap, width = coarticulate(gap, width, closed | silent)

    pitch = _pitch_semitones(frames, audio.sample_rate)
    accent = _accents(pitch, loudness, fps)
    rate = 1 - np.exp(-1 / (ACTIVITY_SECONDS * fps))
    activity = _one_pole(sounding.astype(np.float32), rate)
    spoke = long_runs(sounding, PHRASE_MIN_S * fps)
    pause = long_runs(~sounding, LONG_PAUSE_S * fps)
    phrase_end = pause & np.concatenate([[False], spoke[:-1]])
    return MouthControls(gap, width, activity.astype(np.float32), accent.astype(np.float32), phrase_end)


def _classify(spectra, freqs, level_db, sounding, fps):
    """Per frame (gap, width, closed) for a recording, from where its energy sits."""
    gap = np.zeros(len(level_db), np.float32)
    width = np.zeros(len(level_db), np.float32)

    def share(lo, hi, of=(SPEECH_BAND_HZ[0], freqs[-1])):
        num = spectra[:, (freqs >= lo) & (freqs < hi)].sum(axis=1)
        return num / np.maximum(spectra[:, (freqs >= of[0]) & (freqs < of[1])].sum(axis=1), 1e-12)

    high = (freqs >= 4000.0) & (freqs < 8000.0)
    hf_share = share(4000.0, 8000.0)
    hf_centre = (spectra[:, high] * freqs[high]).sum(axis=1) / np.maximum(spectra[:, high].sum(axis=1), 1e-12)
    fricative = sounding & (hf_share > FRICATIVE_HF_SHARE)
    first = np.log(share(500.0, 1000.0, of=(250.0, 3400.0)) + 1e-6)  # jaw opening (F1 high)
    second = np.log(share(1800.0, 3400.0, of=(250.0, 3400.0)) + 1e-6)  # lips spread (F2 high)
    vowel = sounding & ~fricative
    if vowel.sum() >= 3:
        openness = _relative(first, vowel)
        spread = _relative(second, vowel)
        gap[vowel] = 0.3 + 0.7 * openness[vowel]
        width[vowel] = np.clip(2.0 * spread[vowel] - 1.0 - 0.5 * openness[vowel], -1.0, 1.0)
    sh = fricative & (hf_centre < SH_BELOW_HZ)
    gap[fricative], width[fricative] = VISEMES["s"]
    gap[sh], width[sh] = VISEMES["sh"]
    closed = _closures(level_db, sounding, hf_share)
    gap[closed] = 0.0
    return gap, width, closed


def _closures(level_db, sounding, hf_share) -> np.ndarray:
    """Short, sharp dips inside speech without hiss: stop consonants, where the lips (for p/b/m)
    or the tongue shut the air off."""
    closed = np.zeros(len(level_db), bool)
    n = len(level_db)
    for i in range(1, n - 1):
        if hf_share[i] > FRICATIVE_HF_SHARE:
            continue
        before = level_db[max(0, i - CLOSURE_MAX_FRAMES) : i].max()
        after = level_db[i + 1 : i + 1 + CLOSURE_MAX_FRAMES].max() if i + 1 < n else -np.inf
        if sounding[max(0, i - CLOSURE_MAX_FRAMES) : i].any() and min(before, after) - level_db[i] >= CLOSURE_DIP_DB:
            closed[i] = True
    return closed


def _song_hold(sounding: np.ndarray, fps: int) -> np.ndarray:
    """Short silences right after long sustained sound (notes in a song): hold the mouth."""
    held = np.zeros_like(sounding)
    sustained = long_runs(sounding, SONG_HOLD_S[0] * fps)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], (~sounding).astype(np.int8), [0]])))
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        if start > 0 and end < len(sounding) and end - start <= SONG_HOLD_S[1] * fps and sustained[start - 1]:
            held[start:end] = True
    return held


def _relative(feature: np.ndarray, where: np.ndarray) -> np.ndarray:
    """0..1 across this speaker's own 10th..90th percentile of `feature` over `where`."""
    low, high = np.percentile(feature[where], [10, 90])
    return np.clip((feature - low) / max(high - low, 1e-6), 0.0, 1.0)


def _frame_spectra(samples: np.ndarray, sample_rate: int, frame_count: int, fps: int):
    """Power spectra of one window per video frame, centred on the frame's middle (+ lead), the
    factor that turns a band's summed power into dBFS, and the windows themselves."""
    window = max(16, round(WINDOW_S * sample_rate))
    centres = ((np.arange(frame_count) + 0.5) / fps + FPS_LEAD_S) * sample_rate
    starts = np.round(centres - window / 2).astype(np.int64)
    padded = np.concatenate([np.zeros(window, np.float32), samples, np.zeros(2 * window, np.float32)])
    starts = np.clip(starts + window, 0, len(padded) - window)
    frames = np.lib.stride_tricks.sliding_window_view(padded, window)[starts]
    taper = np.hanning(window).astype(np.float32)
    spectra = np.abs(np.fft.rfft(frames * taper, axis=1)) ** 2
    # Parseval: half-spectrum power -> mean square, relative to a full-scale sine (1/2): dBFS.
    power_to_dbfs = 2.0 / (window * float((taper**2).sum())) / 0.5
    return spectra, np.fft.rfftfreq(window, 1.0 / sample_rate), power_to_dbfs, frames


def _pitch_semitones(frames: np.ndarray, sample_rate: int) -> np.ndarray:
    """Pitch per frame in semitones above the voiced frames' median (NaN where unvoiced), by
    normalised autocorrelation."""
    centred = frames - frames.mean(axis=1, keepdims=True)
    size = 2 * frames.shape[1]
    spectrum = np.fft.rfft(centred, n=size, axis=1)
    corr = np.fft.irfft(np.abs(spectrum) ** 2, n=size, axis=1)[:, : frames.shape[1]]
    lo, hi = int(sample_rate / PITCH_HZ[1]), int(sample_rate / PITCH_HZ[0])
    lags = corr[:, lo:hi] / np.maximum(corr[:, :1], 1e-9)
    best = lags.argmax(axis=1)
    voiced = lags[np.arange(len(best)), best] > VOICED_CORRELATION
    hz = sample_rate / (best + lo)
    semitones = np.full(len(hz), np.nan)
    if voiced.sum() >= 3:
        semitones[voiced] = 12 * np.log2(hz[voiced] / np.median(hz[voiced]))
    return semitones


def _accents(pitch: np.ndarray, loudness: np.ndarray, fps: int) -> np.ndarray:
    """0..1 where the voice rises in pitch above its usual level or swells in loudness."""
    from avatarbot.avatar.lite.motion import gaussian_smooth

    rise = np.nan_to_num(np.clip((pitch - ACCENT_SEMITONES) / ACCENT_SPAN_SEMITONES, 0.0, 1.0))
    swell = np.clip(np.diff(gaussian_smooth(loudness, 0.1 * fps), prepend=0.0) * 6.0, 0.0, 1.0)
    return np.clip(gaussian_smooth(np.maximum(rise, swell), 0.08 * fps), 0.0, 1.0)


def _one_pole(x: np.ndarray, rate: float) -> np.ndarray:
    out = np.empty(len(x), np.float32)
    state = 0.0
    for i, value in enumerate(x.tolist()):
        state += rate * (value - state)
        out[i] = state
    return out
