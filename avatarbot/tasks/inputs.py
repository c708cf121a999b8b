"""Inputs in the form the queue stores them: a PNG photo and a 16 kHz mono 16-bit WAV.

Normalising once at submit time means the worker reads simple files it can trust, without
ffmpeg or a second face detection (the faces found at submit travel along as a small JSON
blob), and a re-upload of the same photo in another format still deduplicates by content.
Speech made from text brings its phoneme timings along the same way, so the lite engine shapes
the lips from what was said; recordings have none.
"""

from __future__ import annotations

import io
import json
import wave

import numpy as np

from avatarbot.media.types import Audio, Face, Phoneme, Photo

SAMPLE_RATE = 16_000  # what every engine consumes (whisper features, DESIGN §6)


def photo_png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def audio_wav(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """16-bit mono PCM: lossless for everything a microphone or a song delivers at 16 kHz."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def faces_json(photo: Photo) -> bytes:
    """The faces found at submit time, so the worker doesn't detect them again."""
    main = photo.faces.index(photo.main_face) if photo.main_face in photo.faces else None
    record = {
        "faces": [
            {"box": f.box, "score": f.score, "landmarks": f.landmarks, "landmarks_estimated": f.landmarks_estimated}
            for f in photo.faces
        ],
        "main": main,
    }
    return json.dumps(record, sort_keys=True).encode()


def read_photo(png: bytes, faces: bytes) -> Photo:
    """A Photo from the stored PNG and faces (both written by this module at submit)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        rgb = np.asarray(image.convert("RGB"))
    record = json.loads(faces)
    found = tuple(
        Face(
            box=tuple(f["box"]),
            score=f["score"],
            landmarks={name: tuple(point) for name, point in f["landmarks"].items()},
            landmarks_estimated=f["landmarks_estimated"],
        )
        for f in record["faces"]
    )
    main = found[record["main"]] if record["main"] is not None else None
    return Photo(rgb=rgb, faces=found, main_face=main, source_format="PNG")


def phonemes_json(phonemes: tuple[Phoneme, ...]) -> bytes:
    """Phoneme timings as [symbol, start, end] rows (seconds, to 0.1 ms)."""
    rows = [[p.symbol, round(p.start, 4), round(p.end, 4)] for p in phonemes]
    return json.dumps({"phonemes": rows}, separators=(",", ":")).encode()


def read_phonemes(data: bytes) -> tuple[Phoneme, ...]:
    return tuple(Phoneme(symbol, start, end) for symbol, start, end in json.loads(data)["phonemes"])


def read_wav(data: bytes, phonemes: bytes | None = None) -> Audio:
    """The stored WAV back to samples (no ffmpeg, since we wrote it ourselves), with the stored
    phoneme timings (`phonemes_json`) when the speech came from text."""
    with wave.open(io.BytesIO(data), "rb") as source:
        if (source.getnchannels(), source.getsampwidth()) != (1, 2):
            raise ValueError("not a normalised avatarbot WAV (mono, 16-bit)")
        rate = source.getframerate()
        pcm = np.frombuffer(source.readframes(source.getnframes()), dtype="<i2")
    timings = read_phonemes(phonemes) if phonemes is not None else ()
    return Audio(samples=pcm.astype(np.float32) / 32768.0, sample_rate=rate, source_format="wav", phonemes=timings)
