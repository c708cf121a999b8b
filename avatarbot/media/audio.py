"""Turn any voice note, song or video soundtrack into checked mono float32 samples.

The declared duration is read from the container first (PyAV, headers only) so a 2-hour upload
is refused in milliseconds; the decode itself runs in an ffmpeg subprocess with a time limit and
a length cap, in case the header lied. Loudness is then brought to a common level, because voice
notes arrive anywhere from whisper-quiet to clipped and the renderer reads lip motion from level.
"""

from __future__ import annotations

import logging
import math
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatarbot import messages
from avatarbot.errors import (
    AudioTooLongError,
    AudioTooShortError,
    CorruptAudioError,
    EmptyFileError,
    NoAudioStreamError,
    NotAudioError,
    SilentAudioError,
)
from avatarbot.media import ffmpeg
from avatarbot.media.types import Audio
from avatarbot.settings import LimitsSettings

log = logging.getLogger(__name__)

# A recording may run this much past the limit (container rounding, encoder padding).
DURATION_TOLERANCE_S = 0.5
# ffmpeg gets this long plus a share of the audio's length before it is killed.
DECODE_BASE_TIMEOUT_S = 20.0
DECODE_TIMEOUT_PER_AUDIO_S = 0.5

# Loudness, measured on 50 ms blocks. Blocks quieter than the absolute gate, or more than the
# relative gate below the loudest block, are pauses and don't count toward the level.
BLOCK_S = 0.05
ABSOLUTE_GATE_DBFS = -60.0
RELATIVE_GATE_DB = 30.0
TARGET_DBFS = -20.0  # speech level of the gated blocks after normalising
PEAK_CEILING = 10 ** (-1.0 / 20)  # -1 dBFS: headroom for the AAC encoder
MAX_GAIN_DB = 30.0  # more would mostly amplify room noise
# A recording whose loudest block stays below this is treated as silence.
SILENCE_DBFS = -60.0


# ffmpeg demuxers that read still or animated pictures rather than recordings.
IMAGE_DEMUXERS = frozenset({"image2", "gif", "apng", "webp", "bmp_pipe", "tiff_pipe"})


@dataclass(frozen=True)
class _Declared:
    duration: float | None  # seconds, from the container; None when it doesn't say
    source_format: str  # e.g. "ogg/opus", for logs


def load_audio(
    source: bytes | Path,
    limits: LimitsSettings,
    *,
    sample_rate: int = 16000,
    normalize: bool = True,
) -> Audio:
    """Decode and check audio (or a video's soundtrack); raise a specific `AudioError` when a user
    sent something unusable."""
    with tempfile.TemporaryDirectory(prefix="avatarbot-audio-") as tmp:
        if isinstance(source, (bytes, bytearray, memoryview)):
            if len(source) == 0:
                raise EmptyFileError(messages.EMPTY_FILE, detail="audio: zero bytes")
            # A file, not a pipe: MP4/M4A keep their index at the end and need seeking.
            path = Path(tmp) / "upload"
            path.write_bytes(bytes(source))
        else:
            path = Path(source)
            if path.stat().st_size == 0:
                raise EmptyFileError(messages.EMPTY_FILE, detail=f"audio: {path} is empty")

        declared = _probe(path)
        limit = limits.max_audio_seconds
        if declared.duration is not None and declared.duration > limit + DURATION_TOLERANCE_S:
            raise AudioTooLongError(
                messages.audio_too_long(declared.duration, limit),
                detail=f"{declared.source_format} declares {declared.duration:.1f} s",
            )
        samples = _decode(path, sample_rate, max_seconds=limit + 2 * DURATION_TOLERANCE_S)

    # A constant offset (a cheap microphone's bias, or a file of one repeated value) is inaudible
    # but would count as loudness below and keep the mouth open: take it out before measuring.
    samples = remove_dc_offset(samples)
    duration = len(samples) / sample_rate
    if duration > limit + DURATION_TOLERANCE_S:  # the header understated it
        raise AudioTooLongError(
            messages.audio_too_long(duration, limit),
            detail=f"{declared.source_format} declared {declared.duration} s but decodes past {duration:.1f} s",
        )
    if duration < limits.min_audio_seconds:
        raise AudioTooShortError(
            messages.audio_too_short(duration, limits.min_audio_seconds), detail=f"{duration:.3f} s decoded"
        )
    block_levels = _block_levels_dbfs(samples, sample_rate)
    if block_levels.max(initial=-math.inf) < SILENCE_DBFS:
        raise SilentAudioError(
            messages.SILENT_AUDIO, detail=f"loudest 50 ms block {block_levels.max(initial=-math.inf):.1f} dBFS"
        )
    if normalize:
        samples = normalize_loudness(samples, sample_rate)
    return Audio(samples=samples, sample_rate=sample_rate, source_format=declared.source_format)


def _probe(path: Path) -> _Declared:
    """Container and first audio stream from the headers only (PyAV, nothing decoded)."""
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            audio_streams = list(container.streams.audio)
            if not audio_streams:
                if _is_image_format(container.format.name):
                    raise NotAudioError(messages.NOT_AUDIO, detail=f"{container.format.name}: a picture")
                if container.streams.video:
                    raise NoAudioStreamError(messages.NO_AUDIO_STREAM, detail=f"{container.format.name}: video only")
                raise CorruptAudioError(messages.CORRUPT_AUDIO, detail=f"{container.format.name}: no audio stream")
            stream = audio_streams[0]
            codec = stream.codec_context.name if stream.codec_context else "unknown"
            duration = None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / av.time_base
            fmt = container.format.name.split(",")[0]
            return _Declared(duration=duration, source_format=f"{fmt}/{codec}")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise CorruptAudioError(messages.CORRUPT_AUDIO, detail=f"probe failed: {exc}") from exc


def _is_image_format(demuxer: str) -> bool:
    """ffmpeg reads pictures with image demuxers: "image2", "jpeg_pipe", "png_pipe", "gif", ..."""
    return demuxer in IMAGE_DEMUXERS or demuxer.endswith("_pipe")


def _decode(path: Path, sample_rate: int, *, max_seconds: float) -> np.ndarray:
    """The first audio stream, as mono float32 at `sample_rate`, at most `max_seconds` long."""
    args = [
        "-i", str(path),
        "-map", "0:a:0", "-vn", "-sn", "-dn",
        "-t", f"{max_seconds:.3f}",
        "-ac", "1", "-ar", str(sample_rate),
        "-f", "f32le", "pipe:1",
    ]  # fmt: skip
    timeout = DECODE_BASE_TIMEOUT_S + DECODE_TIMEOUT_PER_AUDIO_S * max_seconds
    try:
        result = ffmpeg.run(args, timeout_s=timeout)
    except subprocess.TimeoutExpired as exc:
        raise CorruptAudioError(messages.CORRUPT_AUDIO, detail=f"ffmpeg decode ran past {timeout:.0f} s") from exc
    samples = np.frombuffer(result.stdout[: len(result.stdout) // 4 * 4], dtype="<f4")
    if result.returncode == 0 and not len(samples) and not result.stderr.strip():
        # A well-formed file holding no sound at all (a 0 s WAV), decoded without a complaint:
        # too short, not damaged.
        return np.zeros(0, dtype=np.float32)
    if result.returncode != 0 or not len(samples):
        raise CorruptAudioError(
            messages.CORRUPT_AUDIO,
            detail=f"ffmpeg exit {result.returncode}, {len(samples)} samples: {ffmpeg.stderr_tail(result.stderr)}",
        )
    if result.stderr:
        log.info("ffmpeg decoded with warnings: %s", ffmpeg.stderr_tail(result.stderr))
    samples = np.nan_to_num(samples.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(samples, -1.0, 1.0)


def remove_dc_offset(samples: np.ndarray) -> np.ndarray:
    if not len(samples):
        return samples
    return np.clip(samples - np.float32(samples.mean(dtype=np.float64)), -1.0, 1.0).astype(np.float32)


def _block_levels_dbfs(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """RMS level of each 50 ms block in dBFS (a partial last block is dropped unless it's all)."""
    block = max(1, int(sample_rate * BLOCK_S))
    count = max(1, len(samples) // block)
    blocks = samples[: count * block].reshape(count, -1) if len(samples) >= block else samples[None, :]
    rms = np.sqrt(np.mean(np.square(blocks, dtype=np.float64), axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-12))


def normalize_loudness(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Bring the gated speech level to TARGET_DBFS, never pushing the peak past PEAK_CEILING."""
    levels = _block_levels_dbfs(samples, sample_rate)
    gate = max(ABSOLUTE_GATE_DBFS, levels.max(initial=-math.inf) - RELATIVE_GATE_DB)
    active = levels[levels > gate]
    if not len(active):
        return samples
    active_dbfs = 10 * np.log10(np.mean(10 ** (active / 10)))  # mean power of the active blocks
    gain = 10 ** (min(TARGET_DBFS - active_dbfs, MAX_GAIN_DB) / 20)
    peak = float(np.max(np.abs(samples)))
    if peak * gain > PEAK_CEILING:
        gain = PEAK_CEILING / peak
    return np.clip(samples * gain, -1.0, 1.0).astype(np.float32)
