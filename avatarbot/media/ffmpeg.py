"""Finding and running the ffmpeg program.

We run ffmpeg as a subprocess, not in-process, for decoding untrusted uploads and encoding:
a crash or a hang on a hostile file then costs one child process (killed at a time limit), never
the bot or the worker.
"""

from __future__ import annotations

import functools
import shutil
import subprocess

# The last part of ffmpeg's error output kept for logs (it ends with the reason).
STDERR_TAIL_CHARS = 2000


@functools.cache
def ffmpeg_exe() -> str:
    """The ffmpeg on PATH (the system's, usually the most complete), else imageio-ffmpeg's static
    build, which ships libx264, AAC and Opus."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as exc:
        raise RuntimeError("no ffmpeg found: install ffmpeg or the imageio-ffmpeg package") from exc


def base_command() -> list[str]:
    """Every call: never read the terminal, only real errors on stderr, overwrite outputs."""
    return [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]


def run(args: list[str], *, timeout_s: float) -> subprocess.CompletedProcess:
    """Run ffmpeg with `args` after the base command, capturing stdout and stderr.

    Raises subprocess.TimeoutExpired (the child is killed first) when it runs past `timeout_s`."""
    return subprocess.run(base_command() + args, capture_output=True, timeout=timeout_s, check=False)


def stderr_tail(stderr: bytes | str | None) -> str:
    if not stderr:
        return ""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    return text.strip()[-STDERR_TAIL_CHARS:]
