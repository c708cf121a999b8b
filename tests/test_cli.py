"""`avatarbot animate` and `avatarbot doctor` as a user runs them: a real process, real files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from avatarbot.media.video import probe

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "examples" / "astronaut.jpg"


def avatarbot(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(
        os.environ, HF_HUB_OFFLINE="1", AVATARBOT_DATA_DIR=str(tmp_path / "data"), AVATARBOT_TTS__ENGINE="offline"
    )
    return subprocess.run(
        [sys.executable, "-m", "avatarbot", *args], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path
    )


def make_voice_note(path: Path, text: str) -> Path:
    """Spoken words encoded the way chat apps send voice notes: OGG/Opus, 48 kHz, mono."""
    wav = path.with_suffix(".wav")
    subprocess.run(["espeak-ng", "-w", str(wav), text], check=True)
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(wav),
            "-c:a",
            "libopus",
            "-b:a",
            "32k",
            "-ar",
            "48000",
            "-ac",
            "1",
            str(path),
        ],
        check=True,
    )
    wav.unlink()
    return path


def audio_duration(path: Path) -> float:
    return probe(path).duration


def assert_valid_clip(out: Path, expected_duration: float) -> None:
    info = probe(out)
    kinds = sorted((s.kind, s.codec) for s in info.streams)
    assert kinds == [("audio", "aac"), ("video", "h264")]
    assert info.pix_fmt == "yuv420p"
    assert abs(info.duration - expected_duration) <= 0.1


def test_photo_and_voice_note(tmp_path):
    voice = make_voice_note(tmp_path / "note.ogg", "Hello everyone, this is my voice note for the bot.")
    out = tmp_path / "clip.mp4"
    result = avatarbot("animate", "--photo", str(ASTRONAUT), "--voice", str(voice), "-o", str(out), tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert_valid_clip(out, audio_duration(voice))


def test_photo_and_text(tmp_path):
    out = tmp_path / "clip.mp4"
    result = avatarbot(
        "animate",
        "--photo",
        str(ASTRONAUT),
        "--text",
        "Good morning, space cadets!",
        "--voice-name",
        "en-male",
        "--quality",
        "fast",
        "-o",
        str(out),
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    info = probe(out)
    assert info.duration > 1.0
    assert {s.kind for s in info.streams} == {"video", "audio"}


def test_photo_without_face_gets_clip_and_note(tmp_path):
    y, x = np.mgrid[0:480, 0:640]
    landscape = np.stack([x * 255 // 640, y * 255 // 480, np.full_like(x, 120)], axis=-1).astype(np.uint8)
    photo = tmp_path / "gradient.png"
    Image.fromarray(landscape).save(photo)
    voice = make_voice_note(tmp_path / "note.ogg", "There is nobody in this picture.")
    out = tmp_path / "clip.mp4"
    result = avatarbot("animate", "--photo", str(photo), "--voice", str(voice), "-o", str(out), tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "couldn't find a face" in result.stderr
    assert_valid_clip(out, audio_duration(voice))


def test_ninety_second_recording_is_refused_with_the_limit(tmp_path):
    long_voice = tmp_path / "long.ogg"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=220:duration=90",
            "-c:a",
            "libopus",
            "-b:a",
            "16k",
            "-ar",
            "48000",
            "-ac",
            "1",
            str(long_voice),
        ],
        check=True,
    )
    out = tmp_path / "clip.mp4"
    result = avatarbot(
        "animate", "--photo", str(ASTRONAUT), "--voice", str(long_voice), "-o", str(out), tmp_path=tmp_path
    )
    assert result.returncode != 0
    assert "60 seconds" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_missing_photo_is_a_clear_error(tmp_path):
    result = avatarbot("animate", "--photo", "nope.jpg", "--text", "hi", "-o", "x.mp4", tmp_path=tmp_path)
    assert result.returncode == 2
    assert "no such file" in result.stderr and "Traceback" not in result.stderr


def test_doctor_reports_every_part(tmp_path):
    result = avatarbot("doctor", tmp_path=tmp_path)
    for name in ("ffmpeg", "face detection", "offline TTS", "edge-tts", "Redis", "GPU", "HunyuanVideo-Avatar weights"):
        assert name in result.stdout
    # Everything required is installed by scripts/setup.sh, so the doctor is satisfied here.
    assert result.returncode == 0, result.stdout
    assert "[ok ] ffmpeg" in result.stdout
    assert "system, on PATH; libx264, aac" in result.stdout  # Debian's ffmpeg, not the wheel's


def test_doctor_says_when_the_wheel_ffmpeg_stands_in(tmp_path):
    """With no ffmpeg on PATH the one inside the imageio-ffmpeg wheel encodes, and doctor says so."""
    env = dict(os.environ, PATH=str(Path(sys.executable).parent), HF_HUB_OFFLINE="1", AVATARBOT_DATA_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "avatarbot", "doctor"], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT
    )
    ffmpeg_line = next(line for line in result.stdout.splitlines() if "] ffmpeg:" in line)
    assert ffmpeg_line.startswith("[ok ]") and "wheel fallback: imageio-ffmpeg" in ffmpeg_line


def readme_demo_command() -> list[str]:
    """What scripts/demo.sh runs, as the README shows it; the two must agree."""
    import shlex

    def animate_line(text: str) -> list[str]:
        for line in text.splitlines():
            if "animate --photo examples/" in line:
                words = shlex.split(line)
                return words[words.index("animate") - 1 :]
        raise AssertionError("no demo command")

    readme = animate_line((ROOT / "README.md").read_text())
    script = animate_line((ROOT / "scripts" / "demo.sh").read_text())
    assert readme[1:-1] == script[1:-1]  # the same command but for the venv path and the output
    return ["avatarbot", *readme[1:]]


def test_readme_demo_command(tmp_path):
    """The README's demo (scripts/demo.sh's command) from the repo root: an H.264 + AAC clip as long as the speech."""
    from avatarbot.settings import Settings
    from avatarbot.tts import speak

    command = readme_demo_command()
    out = tmp_path / "hello.mp4"
    command[command.index("-o") + 1] = str(out)
    env = dict(os.environ, HF_HUB_OFFLINE="1", AVATARBOT_TTS__ENGINE="offline")
    result = subprocess.run(
        [sys.executable, "-m", "avatarbot", *command[1:]],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    settings = Settings(tts={"engine": "offline"})
    text = command[command.index("--text") + 1]
    speech = speak(text, None, settings).decode(settings.limits)
    assert_valid_clip(out, speech.duration)
