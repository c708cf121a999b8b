"""How fast is the lite engine? Real-time factors for rendering, encoding and both together.

    python bench/lite.py [--seconds 10] [--quality standard] [--repeats 3] [--photo astronaut]

Renders the astronaut (scikit-image, 512 px, face from our detector; `--photo` picks another of
bench/lite_quality.py's photos, e.g. the `open_mouth` close-up) talking a sentence of
espeak-ng speech padded or cut to `--seconds`, and reports, as audio seconds per wall second
(higher is better; 20x means a 10 s clip takes 0.5 s):

- render: every frame produced and dropped, as a streaming encoder would take it, nothing
  encoded (best of `--repeats`)
- encode: pre-rendered frames through avatarbot.media.video.encode_mp4 (best of `--repeats`),
  at its default x264 preset and at the faster presets in `--presets`
- overall: LiteEngine.render streamed into encode_mp4, as the worker does, same presets

and where the render time goes, stage by stage. Face detection is not part of the render (the
bot does it once when the photo arrives) and is reported on its own line.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

# Run as a script, Python puts bench/ first on the path, where a sibling script's name could
# shadow a standard module (bench/queue.py shadows `queue`); the repository root goes there.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from avatarbot.avatar.engine import QUALITY_SHORT_SIDE, Clip, RenderOptions, frame_count_for
from avatarbot.avatar.lite import LiteEngine
from avatarbot.avatar.lite.animation import LiteAnimation, StageTimer
from avatarbot.media.types import Audio, Photo

SAMPLE_RATE = 16_000
TEXT = (
    "Hello everyone, and welcome back. Today I want to tell you about the view from orbit: "
    "the sunrise comes every ninety minutes, and the Earth looks very, very blue."
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--quality", choices=sorted(QUALITY_SHORT_SIDE), default="standard")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--photo", default="astronaut", help="astronaut, open_mouth (a close-up), camera, hopper")
    parser.add_argument("--presets", nargs="*", default=["ultrafast"], help="extra x264 presets to time")
    args = parser.parse_args()

    photo, detect_s = _photo(args.photo, QUALITY_SHORT_SIDE[args.quality])
    audio = _speech(args.seconds)
    options = RenderOptions(quality=args.quality, seed=1)
    frames_n = frame_count_for(audio.duration)
    print(
        f"clip: {audio.duration:.1f} s audio, {frames_n} frames of {photo.width}x{photo.height}, quality {args.quality}, photo {args.photo}"
    )
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, load average {_load()}, python {platform.python_version()}"
    )
    print(f"face detection (once per photo, not in the render): {detect_s * 1000:.0f} ms")

    render_s, timer = _best(args.repeats, lambda: _render_only(photo, audio, options, frames_n))
    frames = list(LiteEngine().render(photo, audio, options).frames)
    rows = [("render", render_s)]
    for preset in [None, *args.presets]:
        label = f" ({preset})" if preset else " (default)"
        rows.append(("encode" + label, _best(args.repeats, lambda p=preset: _encode_only(frames, photo, audio, p))[0]))
        rows.append(("overall" + label, _best(args.repeats, lambda p=preset: _overall(photo, audio, options, p))[0]))

    print()
    print(f"{'what':<22} {'wall s':>8} {'x real time':>12} {'ms/frame':>9}")
    for name, seconds in rows:
        print(f"{name:<22} {seconds:8.3f} {audio.duration / seconds:11.1f}x {seconds / frames_n * 1000:9.2f}")

    print()
    print(f"{'render stage':<20} {'total ms':>9} {'ms/frame':>9} {'share':>6}")
    stages = sorted(timer.seconds.items(), key=lambda kv: -kv[1])
    for name, seconds in stages:
        print(f"{name:<20} {seconds * 1000:9.1f} {seconds / frames_n * 1000:9.3f} {seconds / render_s:6.0%}")
    print(f"{'(untimed overhead)':<20} {(render_s - sum(timer.seconds.values())) * 1000:9.1f}")
    print(f"\nload average after: {_load()}")
    return 0


def _render_only(photo, audio, options, frames_n):
    timer = StageTimer()
    start = time.perf_counter()
    animation = LiteAnimation.prepare(photo, audio, options, frames_n, timer)
    for _ in animation.frames(timer=timer):
        pass
    return time.perf_counter() - start, timer


def _encode_only(frames, photo, audio, preset):
    from avatarbot.media.video import encode_mp4

    clip = Clip(frames=iter(frames), frame_count=len(frames), width=photo.width, height=photo.height)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        encode_mp4(clip, audio, Path(tmp) / "clip.mp4", **({"preset": preset} if preset else {}))
        return time.perf_counter() - start, None


def _overall(photo, audio, options, preset):
    from avatarbot.media.video import encode_mp4

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        clip = LiteEngine().render(photo, audio, options)
        encode_mp4(clip, audio, Path(tmp) / "clip.mp4", **({"preset": preset} if preset else {}))
        return time.perf_counter() - start, None


def _best(repeats: int, run):
    results = [run() for _ in range(max(1, repeats))]
    return min(results, key=lambda r: r[0])


def _photo(name: str, short_side: int) -> tuple[Photo, float]:
    """The photo (see bench/lite_quality.py for the set) fitted to `short_side`, and how long
    finding its face took with the models loaded."""
    from bench.lite_quality import photo

    photo(name, short_side)  # the first call loads the face models; a running bot has them loaded
    start = time.perf_counter()
    fitted = photo(name, short_side)
    detect_s = time.perf_counter() - start
    if fitted.main_face is None:
        raise SystemExit(f"the face detector found no face in {name}; the benchmark needs one")
    return fitted, detect_s


def _speech(seconds: float) -> Audio:
    """espeak-ng speech (looped with short pauses) cut to `seconds`; a syllable-rate buzz with
    pauses when espeak-ng is missing."""
    n = int(seconds * SAMPLE_RATE)
    espeak = shutil.which("espeak-ng") or shutil.which("espeak")
    if espeak:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "speech.wav"
            subprocess.run([espeak, "-w", str(path), TEXT], check=True, capture_output=True, timeout=60)
            with wave.open(str(path)) as f:
                rate = f.getframerate()
                pcm = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").astype(np.float32) / 32768
        t = np.arange(int(len(pcm) * SAMPLE_RATE / rate)) / SAMPLE_RATE
        voice = np.interp(t, np.arange(len(pcm)) / rate, pcm).astype(np.float32)
        voice = np.concatenate([voice, np.zeros(SAMPLE_RATE // 2, np.float32)])
        samples = np.tile(voice, n // len(voice) + 1)[:n]
    else:
        t = np.arange(n) / SAMPLE_RATE
        buzz = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 10))
        syllables = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) * (np.sin(2 * np.pi * 0.3 * t) > -0.3)
        samples = (0.2 * buzz * syllables).astype(np.float32)
    return Audio(samples=samples, sample_rate=SAMPLE_RATE)


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


if __name__ == "__main__":
    raise SystemExit(main())
