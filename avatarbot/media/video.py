"""The finished clip: frames + audio to a chat-ready MP4, shrunk to an upload limit, thumbnailed.

Chat apps play H.264 (yuv420p, even sizes) with AAC in an MP4 whose index sits at the front
(`+faststart`, so playback starts before the download ends) everywhere, so that is the only
thing we make. Frames are streamed into ffmpeg's stdin one at a time: a 60 s clip never sits in
memory whole, and the engine and the encoder work at the same time.
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from avatarbot import messages
from avatarbot.errors import EncodeError
from avatarbot.media import ffmpeg
from avatarbot.media.types import Audio

if TYPE_CHECKING:  # engine.py imports media.types; importing it back at runtime would be circular
    from avatarbot.avatar.engine import Clip

log = logging.getLogger(__name__)

FPS = 25  # every engine renders 25 fps (avatarbot.avatar.engine.FPS); used when a file doesn't say

VIDEO_CODEC = "libx264"
PIXEL_FORMAT = "yuv420p"  # the only H.264 chroma layout every phone and browser decodes
AUDIO_CODEC = "aac"
AUDIO_SAMPLE_RATE = 48_000  # what players expect of AAC; 16 kHz input is resampled
AUDIO_BITRATE = "128k"
PROGRESS_EVERY_FRAMES = 25  # one progress call per second of video
# After the last frame is written, ffmpeg gets this long to finish the file.
FINISH_TIMEOUT_S = 300.0

# Telegram's sendVideo thumbnail rule: JPEG, at most 320 px per side, under 200 kB.
THUMBNAIL_MAX_SIDE = 320
THUMBNAIL_MAX_BYTES = 200_000
THUMBNAIL_QUALITIES = (85, 70, 55, 40, 25)
THUMBNAIL_MIN_SIDE = 32

# Fitting into a byte budget.
FIT_SAFETY = 0.92  # aim this far under the budget: one-pass rate control overshoots a little
FIT_CONTAINER_OVERHEAD_BYTES = 4096  # moov index and headers of a short MP4
FIT_AUDIO_BITRATES = (96_000, 64_000, 32_000)  # tried in order while video keeps a fair share
FIT_MIN_BITS_PER_PIXEL = 0.05  # below this H.264 turns to mush: lower the resolution instead
FIT_MIN_SHORT_SIDE = 144
FIT_MIN_VIDEO_BITRATE = 24_000
FIT_ATTEMPTS = 3
FIT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class StreamInfo:
    kind: str  # "video", "audio", ...
    codec: str
    duration: float | None


@dataclass(frozen=True)
class VideoInfo:
    duration: float
    size_bytes: int
    width: int
    height: int
    video_codec: str | None
    audio_codec: str | None
    pix_fmt: str | None
    fps: float | None = None
    streams: list[StreamInfo] = field(default_factory=list)


def probe(path: Path) -> VideoInfo:
    """What is in a media file, from its headers (PyAV)."""
    import av

    path = Path(path)
    try:
        with av.open(str(path)) as container:
            streams = []
            for stream in container.streams:
                duration = None
                if stream.duration is not None and stream.time_base is not None:
                    duration = float(stream.duration * stream.time_base)
                codec = stream.codec_context.name if stream.codec_context else "unknown"
                streams.append(StreamInfo(kind=stream.type, codec=codec, duration=duration))
            video = container.streams.video[0] if container.streams.video else None
            audio = container.streams.audio[0] if container.streams.audio else None
            if container.duration is not None:
                duration = container.duration / av.time_base
            else:
                duration = max((s.duration or 0.0 for s in streams), default=0.0)
            return VideoInfo(
                duration=float(duration),
                size_bytes=path.stat().st_size,
                width=video.codec_context.width if video else 0,
                height=video.codec_context.height if video else 0,
                video_codec=video.codec_context.name if video else None,
                audio_codec=audio.codec_context.name if audio else None,
                pix_fmt=video.codec_context.pix_fmt if video else None,
                fps=float(video.average_rate) if video is not None and video.average_rate else None,
                streams=streams,
            )
    except av.error.FFmpegError as exc:
        raise EncodeError(messages.ENCODE_FAILED, detail=f"probe {path}: {exc}") from exc


def encode_mp4(
    clip: Clip,
    audio: Audio,
    out: Path,
    *,
    crf: int = 23,
    preset: str = "veryfast",
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Encode the clip's frames with the audio into `out`. The video covers the audio exactly
    (missing frames repeat the last one, extra frames are dropped), so both end together.

    `progress(frames_written, frames_total)` is called every PROGRESS_EVERY_FRAMES frames.
    Anything the frame iterator raises (e.g. RenderCancelled) passes through unchanged."""
    out = Path(out)
    fps = clip.fps or FPS
    total = max(1, math.ceil(audio.duration * fps - 1e-6))
    even_w, even_h = clip.width - clip.width % 2, clip.height - clip.height % 2
    if even_w < 2 or even_h < 2:
        raise EncodeError(messages.ENCODE_FAILED, detail=f"clip size {clip.width}x{clip.height} too small")
    partial = out.with_name(out.name + ".part")

    # Frames go in on stdin, the audio on a second pipe: no scratch files to leak if the
    # process dies mid-encode.
    audio_read, audio_write = os.pipe()
    args = [
        "-f", "rawvideo", "-pix_fmt", PIXEL_FORMAT, "-s", f"{even_w}x{even_h}", "-framerate", str(fps),
        "-i", "pipe:0",
        "-f", "f32le", "-ar", str(audio.sample_rate), "-ac", "1", "-i", f"pipe:{audio_read}",
        "-map", "0:v:0", "-map", "1:a:0",
        "-c:v", VIDEO_CODEC, "-preset", preset, "-crf", str(crf), "-pix_fmt", PIXEL_FORMAT,
        "-c:a", AUDIO_CODEC, "-b:a", AUDIO_BITRATE, "-ar", str(AUDIO_SAMPLE_RATE),
        "-movflags", "+faststart", "-f", "mp4", str(partial),
    ]  # fmt: skip
    try:
        process = subprocess.Popen(
            ffmpeg.base_command() + args,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=(audio_read,),
        )
    except BaseException:
        os.close(audio_write)
        raise
    finally:
        os.close(audio_read)
    stderr = _StderrCollector(process.stderr)
    audio_feeder = threading.Thread(
        target=_write_and_close, args=(audio_write, _audio_bytes(audio)), name="encode-audio", daemon=True
    )
    audio_feeder.start()
    try:
        written = _feed_frames(process, clip, total, (even_h, even_w), progress)
        process.stdin.close()
        code = process.wait(timeout=FINISH_TIMEOUT_S)
    except BrokenPipeError:  # ffmpeg quit early; its stderr says why
        code = process.wait(timeout=FINISH_TIMEOUT_S)
        written = -1
    except BaseException:
        process.kill()
        process.wait()
        partial.unlink(missing_ok=True)
        raise
    finally:
        audio_feeder.join()
        stderr.join()
    if code != 0 or written < 0:
        partial.unlink(missing_ok=True)
        raise EncodeError(messages.ENCODE_FAILED, detail=f"ffmpeg exit {code}: {ffmpeg.stderr_tail(stderr.text)}")
    os.replace(partial, out)
    log.debug("encoded %s: %d frames %dx%d, %.2f s audio", out, total, even_w, even_h, audio.duration)
    return out


def _audio_bytes(audio: Audio) -> bytes:
    return np.ascontiguousarray(audio.samples, dtype="<f4").tobytes()


def _write_and_close(fd: int, data: bytes) -> None:
    """Write all of `data` to a pipe, then close it (end of input); a reader that quit is fine."""
    try:
        with open(fd, "wb", closefd=True) as pipe:
            pipe.write(data)
    except BrokenPipeError:
        pass


class _StderrCollector:
    """Drains ffmpeg's stderr in a thread (a full pipe would stall ffmpeg), keeping the tail."""

    def __init__(self, stream):
        self._chunks: list[bytes] = []
        self._thread = threading.Thread(target=self._drain, args=(stream,), name="encode-stderr", daemon=True)
        self._thread.start()

    def _drain(self, stream) -> None:
        kept = 0
        for chunk in iter(lambda: stream.read(4096), b""):
            self._chunks.append(chunk)
            kept += len(chunk)
            while kept > 4 * ffmpeg.STDERR_TAIL_CHARS and len(self._chunks) > 1:
                kept -= len(self._chunks.pop(0))
        stream.close()

    def join(self) -> None:
        self._thread.join()

    @property
    def text(self) -> bytes:
        return b"".join(self._chunks)


def _to_yuv420p(frame: np.ndarray, even_size: tuple[int, int]) -> bytes:
    """RGB -> planar BT.601 limited-range YUV 4:2:0, in our process.

    Piping YUV halves the bytes sent to ffmpeg and takes its colour conversion off the encoder's
    critical path (bench/lite.py: encode about 30% faster); OpenCV's I420 conversion is the same
    limited-range BT.601 that H.264 players assume for untagged yuv420p."""
    height, width = even_size
    return cv2.cvtColor(np.ascontiguousarray(frame[:height, :width]), cv2.COLOR_RGB2YUV_I420).tobytes()


def _feed_frames(process: subprocess.Popen, clip: Clip, total: int, even_size: tuple[int, int], progress) -> int:
    expected = (clip.height, clip.width, 3)
    written = 0
    last = None
    for frame in clip.frames:
        if written >= total:
            break
        frame = np.asarray(frame)
        if frame.shape != expected or frame.dtype != np.uint8:
            raise EncodeError(
                messages.ENCODE_FAILED,
                detail=f"frame {written} is {frame.shape} {frame.dtype}, expected {expected} uint8",
            )
        last = _to_yuv420p(frame, even_size)
        process.stdin.write(last)
        written += 1
        if progress is not None and written % PROGRESS_EVERY_FRAMES == 0:
            progress(written, total)
    if last is None:
        raise EncodeError(messages.ENCODE_FAILED, detail="the clip has no frames")
    if written < total:
        log.warning("clip ended %d frames before its audio; holding the last frame", total - written)
        while written < total:
            process.stdin.write(last)
            written += 1
    if progress is not None and written % PROGRESS_EVERY_FRAMES != 0:
        progress(written, total)
    return written


def fit_to_size(src: Path, max_bytes: int, out: Path) -> Path:
    """`src` itself when it is within `max_bytes`; otherwise a re-encode that is.

    The bitrate comes from the duration and the budget; when that leaves too few bits per pixel
    the picture is scaled down too, since a smaller sharp clip beats a blocky big one."""
    src, out = Path(src), Path(out)
    if src.stat().st_size <= max_bytes:
        return src
    info = probe(src)
    if info.duration <= 0 or not info.width:
        raise EncodeError(messages.ENCODE_FAILED, detail=f"can't fit {src}: no video or no duration")
    fps = info.fps or FPS
    budget_bits = (max_bytes * FIT_SAFETY - FIT_CONTAINER_OVERHEAD_BYTES) * 8
    total_bitrate = budget_bits / info.duration
    audio_bitrate = (
        next((rate for rate in FIT_AUDIO_BITRATES if rate <= total_bitrate * 0.25), FIT_AUDIO_BITRATES[-1])
        if info.audio_codec
        else 0
    )
    video_bitrate = total_bitrate - audio_bitrate

    for attempt in range(1, FIT_ATTEMPTS + 1):
        if video_bitrate < FIT_MIN_VIDEO_BITRATE:
            break
        width, height = _size_for_bitrate(info.width, info.height, video_bitrate, fps)
        _reencode(src, out, width, height, int(video_bitrate), audio_bitrate)
        size = out.stat().st_size
        log.info(
            "fit attempt %d: %dx%d at %d bit/s -> %d bytes (budget %d)",
            attempt,
            width,
            height,
            video_bitrate,
            size,
            max_bytes,
        )
        if size <= max_bytes:
            return out
        video_bitrate *= max_bytes / size * FIT_SAFETY
    out.unlink(missing_ok=True)
    raise EncodeError(
        messages.clip_too_big(max_bytes),
        detail=f"{src} ({info.duration:.1f} s, {src.stat().st_size} bytes) can't fit in {max_bytes} bytes",
        params={"limit_bytes": max_bytes},
    )


def _size_for_bitrate(width: int, height: int, video_bitrate: float, fps: float) -> tuple[int, int]:
    """The largest size (same aspect, even sides) that still gets FIT_MIN_BITS_PER_PIXEL."""
    bits_per_pixel = video_bitrate / (width * height * fps)
    if bits_per_pixel >= FIT_MIN_BITS_PER_PIXEL:
        return width, height
    scale = math.sqrt(bits_per_pixel / FIT_MIN_BITS_PER_PIXEL)
    scale = max(scale, FIT_MIN_SHORT_SIDE / min(width, height))
    if scale >= 1:
        return width, height
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def _reencode(src: Path, out: Path, width: int, height: int, video_bitrate: int, audio_bitrate: int) -> None:
    args = [
        "-i", str(src), "-map", "0:v:0", "-map", "0:a:0?",
        "-vf", f"scale={width}:{height}:flags=area",
        "-c:v", VIDEO_CODEC, "-preset", "medium", "-pix_fmt", PIXEL_FORMAT,
        "-b:v", str(video_bitrate), "-maxrate", str(video_bitrate), "-bufsize", str(video_bitrate * 2),
    ]  # fmt: skip
    args += ["-c:a", AUDIO_CODEC, "-b:a", str(audio_bitrate)] if audio_bitrate else ["-an"]
    args += ["-movflags", "+faststart", "-f", "mp4", str(out)]
    try:
        result = ffmpeg.run(args, timeout_s=FIT_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise EncodeError(messages.ENCODE_FAILED, detail=f"re-encode of {src} ran past {FIT_TIMEOUT_S:.0f} s") from exc
    if result.returncode != 0:
        out.unlink(missing_ok=True)
        raise EncodeError(
            messages.ENCODE_FAILED, detail=f"re-encode exit {result.returncode}: {ffmpeg.stderr_tail(result.stderr)}"
        )


def make_thumbnail(
    src: Path, out: Path, *, max_side: int = THUMBNAIL_MAX_SIDE, max_bytes: int = THUMBNAIL_MAX_BYTES
) -> Path:
    """A JPEG of the clip's first frame (the photo itself, mouth at rest), within the limits."""
    import av
    from PIL import Image

    src, out = Path(src), Path(out)
    try:
        with av.open(str(src)) as container:
            frame = next(container.decode(video=0))
            image = frame.to_image()
    except (av.error.FFmpegError, StopIteration) as exc:
        raise EncodeError(messages.ENCODE_FAILED, detail=f"no frame for a thumbnail in {src}: {exc}") from exc
    side = max_side
    while side >= THUMBNAIL_MIN_SIDE:  # lower the quality first, then the size
        small = image.copy()
        small.thumbnail((side, side), Image.Resampling.LANCZOS)
        for quality in THUMBNAIL_QUALITIES:
            small.save(out, format="JPEG", quality=quality, optimize=True)
            if out.stat().st_size <= max_bytes:
                return out
        side = side * 3 // 4
    out.unlink(missing_ok=True)
    raise EncodeError(messages.ENCODE_FAILED, detail=f"thumbnail of {src} stays above {max_bytes} bytes")
