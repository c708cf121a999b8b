"""How long the media steps take on this machine: face detection on a real photo, photo loading,
and encoding a 10 s clip (250 frames at 512x512) with audio.

    python bench/media_speed.py

Prints the best and median of a few runs. Record results in bench/results.md with the machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/ comes first on sys.path and bench/queue.py would hide the standard
# library's `queue` (imported by torch, redis-py, multiprocessing). Use the repo root instead.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def timed(label: str, fn, repeats: int) -> None:
    fn()  # warm-up: model loading, first-call caches
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    print(f"{label:<48} best {min(runs) * 1000:8.1f} ms   median {statistics.median(runs) * 1000:8.1f} ms")


def main() -> None:
    from PIL import Image
    from skimage import data

    from avatarbot.avatar.engine import Clip, frame_count_for
    from avatarbot.media.faces import detect_faces
    from avatarbot.media.images import load_photo
    from avatarbot.media.types import Audio
    from avatarbot.media.video import encode_mp4
    from avatarbot.settings import LimitsSettings

    astronaut = data.astronaut()
    timed("detect_faces astronaut 512x512 (dlib)", lambda: detect_faces(astronaut, backend="dlib"), 20)
    timed("detect_faces astronaut 512x512 (opencv)", lambda: detect_faces(astronaut, backend="opencv"), 20)

    big = Image.fromarray(astronaut).resize((4000, 4000), Image.Resampling.BICUBIC)
    buffer = __import__("io").BytesIO()
    big.save(buffer, format="JPEG", quality=90)
    jpeg = buffer.getvalue()
    timed("load_photo 16 MP JPEG (draft + faces)", lambda: load_photo(jpeg, LimitsSettings()), 5)

    seconds = 10.0
    t = np.arange(int(seconds * 16000)) / 16000
    audio = Audio(samples=(0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))
    count = frame_count_for(seconds)
    rng = np.random.default_rng(0)
    base = np.array(Image.fromarray(astronaut))  # a real picture, moving a little each frame

    def frames():
        for i in range(count):
            frame = np.roll(base, int(4 * np.sin(i / 5)), axis=0)
            frame[-8:] = rng.integers(0, 255, (8, 512, 3), dtype=np.uint8)  # some change every frame
            yield frame

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.mp4"
        timed(
            f"encode_mp4 {count} frames 512x512 veryfast crf 23",
            lambda: encode_mp4(Clip(frames(), count, 512, 512), audio, out),
            3,
        )
        print(f"  output {out.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
