"""A corpus of hostile and odd inputs, generated on the spot (nothing binary is checked in).

Each `Sample` says what kind of input it is and what must happen to it:
- "refuse": a user-readable refusal and no job (the input could never render);
- "clip": it must be accepted;
- "either": odd but legal; refusing with a clear message or rendering are both fine, crashing is not.

Run `python tests/hostile_corpus.py DIR` to write the files out and look at them.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import wave
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ASTRONAUT = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"


@dataclass(frozen=True)
class Sample:
    name: str
    kind: str  # "image" | "audio" | "text"
    expect: str  # "refuse" | "clip" | "either"
    data: bytes = b""
    text: str = ""


# --- helpers ---------------------------------------------------------------------------------------
def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b"")


def _png_bomb(side: int) -> bytes:
    """A real, complete PNG of side x side black pixels that compresses to about a megabyte."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit greyscale
    compressor = zlib.compressobj(9)
    row = b"\x00" * (side + 1)
    parts = [compressor.compress(row) for _ in range(side)]
    parts.append(compressor.flush())
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def _gif_screen_bomb() -> bytes:
    """A GIF whose logical screen claims 65535 x 65535 pixels."""
    image = io.BytesIO()
    Image.new("P", (4, 4)).save(image, "GIF")
    data = bytearray(image.getvalue())
    data[6:10] = struct.pack("<HH", 65535, 65535)
    return bytes(data)


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _astronaut(size: int = 512) -> Image.Image:
    return Image.open(ASTRONAUT).convert("RGB").resize((size, size))


def _wav(samples: np.ndarray, rate: int, channels: int = 1, sample_width: int = 2) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(sample_width)
        writer.setframerate(rate)
        if sample_width == 2:
            writer.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
        else:
            writer.writeframes((np.clip(samples, -1, 1) * 127 + 128).astype(np.uint8).tobytes())
    return out.getvalue()


def _speechlike(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    syllables = (np.sin(2 * np.pi * 4 * t) > 0).astype(np.float32)
    voice = np.sin(2 * np.pi * 180 * t) + 0.5 * np.sin(2 * np.pi * 720 * t)
    return (0.3 * syllables * voice).astype(np.float32)


def _ffmpeg_lavfi(source: str, codec_args: list[str], fmt: str) -> bytes:
    result = subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", source, *codec_args, "-f", fmt, "pipe:1"],
        capture_output=True,
        check=True,
    )
    return result.stdout


def _patched(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    """`data` with one little header field overwritten (struct format `fmt` at `offset`)."""
    out = bytearray(data)
    out[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    return bytes(out)


def _jpeg_with_broken_exif(jpeg: bytes) -> bytes:
    """An APP1 block that says "Exif", then a TIFF header pointing at an IFD that runs off the end."""
    app1 = b"Exif\x00\x00" + b"MM\x00\x2a\x00\x00\x00\x08" + b"\xff\xff" + b"\x00" * 50
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


def _png_48bit(image: Image.Image) -> bytes:
    """16 bits per channel RGB, which Pillow itself can't write (cameras and editors do)."""
    import cv2

    rgb16 = np.asarray(image, dtype=np.uint16) * 257
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(rgb16[:, :, ::-1]))
    assert ok
    return encoded.tobytes()


def _mp4_without_audio() -> bytes:
    result = subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=128x128:rate=10:duration=2",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "frag_keyframe+empty_moov",
            "-f",
            "mp4",
            "pipe:1",
        ],
        capture_output=True,
        check=True,
    )
    return result.stdout


# --- the corpus ----------------------------------------------------------------------------------
def image_samples() -> list[Sample]:
    astronaut = _astronaut()
    jpeg = _encode(astronaut, "JPEG", quality=85)
    png = _encode(astronaut, "PNG")

    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 on display
    exif[0x010E] = "x" * 60_000  # ImageDescription: a huge EXIF block
    rgba = astronaut.copy()
    rgba.putalpha(Image.linear_gradient("L").resize(astronaut.size))
    frames = [astronaut.resize((128, 128)), Image.new("RGB", (128, 128), "red")]
    bmp_bad = bytearray(_encode(Image.new("RGB", (64, 64)), "BMP"))
    bmp_bad[18:26] = struct.pack("<ii", 1_000_000, 1_000_000)
    sixteen_bit = Image.fromarray(np.asarray(astronaut.convert("L"), dtype=np.uint16) * 257)

    return [
        Sample("empty.jpg", "image", "refuse", b""),
        Sample("text-named.jpg", "image", "refuse", b"this is not a picture, it is a shopping list\n" * 20),
        Sample("png-declares-30000x30000.png", "image", "refuse", _png_header_only(30000, 30000)),
        Sample("png-bomb-20000.png", "image", "refuse", _png_bomb(20000)),
        Sample("gif-screen-bomb.gif", "image", "either", _gif_screen_bomb()),
        Sample("truncated.jpg", "image", "refuse", jpeg[: len(jpeg) // 2]),
        Sample("truncated.png", "image", "refuse", png[: len(png) // 2]),
        Sample("jpeg-with-png-magic.png", "image", "refuse", b"\x89PNG\r\n\x1a\n" + jpeg[8:]),
        Sample("png-with-jpeg-magic.jpg", "image", "refuse", b"\xff\xd8\xff\xe0" + png[4:]),
        Sample("polyglot-jpeg-zip.jpg", "image", "either", jpeg + b"PK\x03\x04" + b"\x00" * 26 + b"evil.sh"),
        Sample("polyglot-gif-script.gif", "image", "refuse", b"GIF89a/*\x00\x00*/=alert(1);//" + b"\x00" * 64),
        Sample("html-named.png", "image", "refuse", b"<html><script>alert(1)</script></html>"),
        Sample("svg.png", "image", "refuse", b'<svg xmlns="http://www.w3.org/2000/svg" width="9999" height="9999"/>'),
        Sample("huge-exif-rotated.jpg", "image", "clip", _encode(astronaut, "JPEG", exif=exif.tobytes())),
        Sample("cmyk.jpg", "image", "clip", _encode(astronaut.convert("CMYK"), "JPEG")),
        Sample("grey.jpg", "image", "clip", _encode(astronaut.convert("L"), "JPEG")),
        Sample("16bit-grey.png", "image", "clip", _encode(sixteen_bit, "PNG")),
        Sample("alpha.png", "image", "clip", _encode(rgba, "PNG")),
        Sample("palette.png", "image", "clip", _encode(astronaut.convert("P"), "PNG")),
        Sample("webp.webp", "image", "clip", _encode(astronaut, "WEBP")),
        Sample("panorama-20000x400.jpg", "image", "either", _encode(Image.new("RGB", (20000, 400), "skyblue"), "JPEG")),
        Sample("one-pixel.png", "image", "refuse", _encode(Image.new("RGB", (1, 1)), "PNG")),
        Sample("sliver-4000x2.png", "image", "refuse", _encode(Image.new("RGB", (4000, 2)), "PNG")),
        Sample(
            "animated.gif",
            "image",
            "refuse",
            _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100),
        ),
        Sample(
            "animated.webp",
            "image",
            "refuse",
            _encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100),
        ),
        Sample(
            "animated.png",
            "image",
            "refuse",
            _encode(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=100),
        ),
        Sample("bmp-lying-size.bmp", "image", "refuse", bytes(bmp_bad)),
        Sample(
            "heic-garbage.heic",
            "image",
            "refuse",
            b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\xde\xad" * 100,
        ),
        Sample("random-bytes.jpg", "image", "refuse", np.random.default_rng(1).bytes(5000)),
        # Added with the hostile-input tests (issue 7): more colour layouts and a wrong-kind upload.
        Sample("48bit-rgb.png", "image", "clip", _png_48bit(astronaut)),
        Sample("cmyk.tiff", "image", "clip", _encode(astronaut.convert("CMYK"), "TIFF")),
        Sample("grey-alpha.png", "image", "clip", _encode(astronaut.convert("LA"), "PNG")),
        Sample("broken-exif.jpg", "image", "clip", _jpeg_with_broken_exif(jpeg)),
        Sample(
            "voice-note-as-photo.jpg",
            "image",
            "refuse",
            _ffmpeg_lavfi("sine=frequency=300:duration=1", ["-c:a", "libopus", "-ac", "1"], "ogg"),
        ),
    ]


def audio_samples() -> list[Sample]:
    rate = 16000
    speech = _speechlike(3.0, rate)
    ogg = _ffmpeg_lavfi(
        "sine=frequency=300:duration=3", ["-c:a", "libopus", "-b:a", "24k", "-ar", "48000", "-ac", "1"], "ogg"
    )
    corrupt_ogg = bytearray(ogg)
    for offset in range(200, len(corrupt_ogg), 97):
        corrupt_ogg[offset] ^= 0xFF
    wav = _wav(speech, rate)
    lying_wav = bytearray(wav)
    lying_wav[40:44] = struct.pack("<I", 0xFFFFFFF0)  # data chunk claims ~4 GB
    mp3 = _ffmpeg_lavfi("sine=frequency=300:duration=3", ["-c:a", "libmp3lame", "-b:a", "64k"], "mp3")

    return [
        Sample("empty.ogg", "audio", "refuse", b""),
        Sample("random.ogg", "audio", "refuse", np.random.default_rng(2).bytes(4000)),
        Sample("unknown-codec.xyz", "audio", "refuse", b"XYZAUDIO\x00\x01" + np.random.default_rng(3).bytes(2000)),
        Sample(
            "midi.mid", "audio", "refuse", b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00`MTrk\x00\x00\x00\x04\x00\xff/\x00"
        ),
        Sample("zero-seconds.wav", "audio", "refuse", _wav(np.zeros(0, np.float32), rate)),
        Sample(
            "ten-minutes.ogg",
            "audio",
            "refuse",
            # Cheapest Opus settings: the encode took 3.4 s at the default complexity, 0.9 s now.
            _ffmpeg_lavfi(
                "sine=frequency=200:duration=600",
                [
                    "-c:a",
                    "libopus",
                    "-b:a",
                    "6k",
                    "-ar",
                    "8000",
                    "-ac",
                    "1",
                    "-compression_level",
                    "0",
                    "-frame_duration",
                    "60",
                ],
                "ogg",
            ),
        ),
        Sample("silence.wav", "audio", "refuse", _wav(np.zeros(rate * 3, np.float32), rate)),
        # A constant offset is inaudible: silence. (It used to pass as loud audio; load_audio now
        # removes the offset before measuring the level.)
        Sample("dc-offset.wav", "audio", "refuse", _wav(np.full(rate * 3, 0.5, np.float32), rate)),
        Sample("corrupt-pages.ogg", "audio", "either", bytes(corrupt_ogg)),
        Sample("header-only.ogg", "audio", "refuse", ogg[:120]),
        Sample("wav-lying-size.wav", "audio", "either", bytes(lying_wav)),
        Sample("mp3-truncated.mp3", "audio", "either", mp3[: len(mp3) // 2]),
        Sample("one-khz-rate.wav", "audio", "either", _wav(_speechlike(3.0, 1000), 1000)),
        Sample("eight-channels.wav", "audio", "clip", _wav(np.repeat(speech, 8), rate, channels=8)),
        Sample("8bit.wav", "audio", "clip", _wav(speech, rate, sample_width=1)),
        Sample("full-scale-square.wav", "audio", "clip", _wav(np.sign(speech + 1e-9) * (np.abs(speech) > 0), rate)),
        Sample("voice-note.ogg", "audio", "clip", ogg),
        Sample("video-without-audio.mp4", "audio", "refuse", _mp4_without_audio()),
        # Added with the hostile-input tests (issue 7). "unknown-codec.xyz" above is random bytes
        # behind a made-up magic; a real container holding a codec nobody decodes is different:
        # a well-formed WAV whose format tag is 0x1234. Then broken WAV headers: 0 channels,
        # a 0 Hz sample rate, and a JPEG sent where a recording was expected.
        Sample("wav-unknown-codec-tag.wav", "audio", "refuse", _patched(wav, 20, "<H", 0x1234)),
        Sample("wav-zero-channels.wav", "audio", "refuse", _patched(wav, 22, "<H", 0)),
        Sample("wav-zero-sample-rate.wav", "audio", "refuse", _patched(wav, 24, "<I", 0)),
        Sample("riff-header-only.wav", "audio", "refuse", wav[:12]),
        Sample("photo-as-voice.ogg", "audio", "refuse", _encode(_astronaut(256), "JPEG")),
    ]


def text_samples() -> list[Sample]:
    return [
        Sample("ten-thousand-chars", "text", "refuse", text="la " * 3334),
        Sample("zero-width-only", "text", "refuse", text="\u200b\u200c\u200d\ufeff" * 10),
        Sample("whitespace-only", "text", "refuse", text=" \n\t  "),
        Sample("right-to-left", "text", "clip", text="\u202eمرحبا بكم في الفضاء"),
        Sample("hebrew", "text", "clip", text="שלום לכולם"),
        Sample("zero-width-inside-words", "text", "clip", text="Hel\u200blo the\u200dre, how are you?"),
        Sample("emoji-only", "text", "either", text="🚀🌕👩‍🚀✨"),
        Sample("control-characters", "text", "either", text="Hello\x00\x07 world\x1b[31m red"),
        Sample("markup-injection", "text", "clip", text="<speak><prosody rate='x-fast'>hi</prosody></speak> & bye"),
    ]


def corpus() -> list[Sample]:
    return image_samples() + audio_samples() + text_samples()


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "hostile-corpus")
    target.mkdir(parents=True, exist_ok=True)
    for sample in corpus():
        (target / sample.name).write_bytes(sample.data or sample.text.encode())
    print(f"wrote {len(corpus())} samples to {target}")
