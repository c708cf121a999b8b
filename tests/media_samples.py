"""Real sample files for the media tests, made on the spot (small, in a tmp dir).

Images come from Pillow's and pillow-heif's encoders, sound from espeak-ng and ffmpeg, so every
decoder path runs on files shaped exactly like the ones users send.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from avatarbot.media.ffmpeg import ffmpeg_exe

# --- images ------------------------------------------------------------------------------------


def two_colour_image(width: int = 160, height: int = 120, mode: str = "RGB") -> Image.Image:
    """Left half red, right half blue: orientation and colour handling are visible in one pixel."""
    rgb = np.zeros((height, width, 3), dtype=np.uint8)
    rgb[:, : width // 2] = (220, 30, 30)
    rgb[:, width // 2 :] = (30, 30, 220)
    image = Image.fromarray(rgb)
    return image if mode == "RGB" else image.convert(mode)


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def jpeg_with_orientation(orientation: int, width: int = 160, height: int = 120) -> bytes:
    """A JPEG stored landscape with an EXIF Orientation tag, as phones write them."""
    image = two_colour_image(width, height)
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    return encode(image, "JPEG", quality=90, exif=exif.tobytes())


def heic(image: Image.Image) -> bytes | None:
    """An iPhone-style HEIC, or None when pillow-heif can't encode here."""
    try:
        import pillow_heif

        heif = pillow_heif.from_pillow(image)
        buffer = io.BytesIO()
        heif.save(buffer, quality=80)
        return buffer.getvalue()
    except Exception:
        return None


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature + IHDR declaring a huge size, with a token IDAT: tiny on disk."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    )


def animated(fmt: str, frames: int = 3) -> bytes:
    images = [two_colour_image().rotate(i * 30) for i in range(frames)]
    return encode(images[0], fmt, save_all=True, append_images=images[1:], duration=100, loop=0)


# --- sound -------------------------------------------------------------------------------------

SPEECH_TEXT = "Hello there. This is a short test of the talking photo bot."


def ffmpeg(*args: str) -> None:
    subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True, timeout=60
    )


def speech_wav(path: Path, text: str = SPEECH_TEXT) -> Path:
    """Real speech from espeak-ng (about 3.5 s); a tone with syllable-like bursts if it's absent."""
    espeak = shutil.which("espeak-ng") or shutil.which("espeak")
    if espeak:
        subprocess.run([espeak, "-w", str(path), text], check=True, timeout=30, capture_output=True)
    else:
        ffmpeg(
            "-f", "lavfi", "-i", "sine=frequency=220:duration=3,volume='0.5*gt(sin(2*PI*4*t),0)':eval=frame", str(path)
        )
    return path


def voice_note(speech: Path, out: Path) -> Path:
    """Exactly what Telegram and Discord voice messages are: OGG/Opus, 48 kHz, mono."""
    ffmpeg("-i", str(speech), "-c:a", "libopus", "-b:a", "32k", "-ar", "48000", "-ac", "1", str(out))
    return out


def transcode(speech: Path, out: Path, *codec_args: str) -> Path:
    ffmpeg("-i", str(speech), *codec_args, str(out))
    return out


def video_with_audio(speech: Path, out: Path) -> Path:
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-i", str(speech),
        "-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(out),
    )  # fmt: skip
    return out


def video_without_audio(out: Path, seconds: float = 1.0) -> Path:
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc=size=160x120:rate=25:duration={seconds}",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(out),
    )  # fmt: skip
    return out


def silence(out: Path, seconds: float = 2.0) -> Path:
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"anullsrc=r=48000:cl=mono:d={seconds}",
        "-c:a",
        "libopus",
        "-ar",
        "48000",
        "-ac",
        "1",
        str(out),
    )
    return out


def tone(out: Path, seconds: float, *codec_args: str) -> Path:
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency=440:sample_rate=48000:duration={seconds}",
        "-ac",
        "1",
        *codec_args,
        str(out),
    )
    return out


def long_recording(out: Path, seconds: float = 600.0) -> Path:
    """A long voice note, cheaply: 10 s of quiet tone at the lowest Opus bitrate, repeated by
    stream copy (no re-encode), so it takes a fraction of a second and ~400 kB for 10 minutes."""
    piece = out.with_name(out.stem + "-piece.ogg")
    ffmpeg(
        "-f", "lavfi", "-i", "sine=frequency=300:sample_rate=48000:duration=10,volume=0.1",
        "-c:a", "libopus", "-b:a", "6k", "-ac", "1", str(piece),
    )  # fmt: skip
    ffmpeg("-stream_loop", str(max(0, round(seconds / 10) - 1)), "-i", str(piece), "-c", "copy", str(out))
    piece.unlink()
    return out


def corrupt(valid: bytes, keep: int = 200, seed: int = 0) -> bytes:
    """The first `keep` bytes of a real file (its header), then noise."""
    noise = np.random.default_rng(seed).integers(0, 256, size=max(4096, len(valid) - keep), dtype=np.uint8)
    return valid[:keep] + noise.tobytes()


def probe_mp4(data: bytes) -> dict:
    """Streams ("audio:aac", "video:h264"), duration and container of a clip, read by ffprobe."""
    with tempfile.NamedTemporaryFile(suffix=".mp4") as handle:
        handle.write(data)
        handle.flush()
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", handle.name],
            check=True, capture_output=True, timeout=30,
        ).stdout  # fmt: skip
    info = json.loads(out)
    return {
        "codecs": sorted(s["codec_type"] + ":" + s["codec_name"] for s in info["streams"]),
        "duration": float(info["format"]["duration"]),
        "format": info["format"]["format_name"],
    }
