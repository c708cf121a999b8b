"""`avatarbot animate`: one clip from the command line, rendered here or through the queue."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from avatarbot import messages
from avatarbot.avatar.engine import RenderOptions
from avatarbot.errors import EmptyFileError, FileTooBigError
from avatarbot.settings import Settings
from avatarbot.vocab import JobState

log = logging.getLogger(__name__)


def _read_input(path: Path, settings: Settings) -> bytes:
    """Read a local input file with the same size rule the bots apply to downloads."""
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise EmptyFileError(messages.EMPTY_FILE, detail=f"{path} is empty")
    if size > settings.limits.max_download_bytes:
        raise FileTooBigError(messages.file_too_big(settings.limits.max_download_bytes), detail=f"{path}: {size} bytes")
    return path.read_bytes()


def _options(args: argparse.Namespace, settings: Settings) -> RenderOptions:
    return RenderOptions(
        quality=args.quality or settings.render.quality,
        motion=settings.render.motion if args.motion is None else args.motion,
        seed=args.seed,
    )


def run_animate(args: argparse.Namespace, settings: Settings) -> int:
    if args.weights is not None:
        settings.hunyuan.weights_dir = args.weights
    engine_name = args.engine or settings.render.engine
    options = _options(args, settings)
    photo_bytes = _read_input(args.photo, settings)
    audio_bytes = _read_input(args.voice, settings) if args.voice else None

    if args.queue:
        return _animate_via_queue(args, settings, options, photo_bytes, audio_bytes)
    return _animate_here(args, settings, engine_name, options, photo_bytes, audio_bytes)


def _animate_here(args, settings, engine_name, options, photo_bytes, audio_bytes) -> int:
    from tqdm import tqdm

    from avatarbot.avatar import get_engine
    from avatarbot.media.audio import load_audio
    from avatarbot.media.images import load_photo
    from avatarbot.render import render_to_mp4

    photo = load_photo(photo_bytes, settings.limits)
    if audio_bytes is None:
        from avatarbot.tts import speak

        audio = speak(args.text, args.voice_name, settings).decode(settings.limits)  # with phoneme timings
    else:
        audio = load_audio(audio_bytes, settings.limits)
    engine = get_engine(engine_name, settings)

    args.output.parent.mkdir(parents=True, exist_ok=True)
    with tqdm(total=1, unit="frame", desc="Rendering", disable=not sys.stderr.isatty()) as bar:

        def on_progress(progress) -> None:
            bar.set_description(progress.stage.capitalize())
            bar.total = max(progress.total, 1)
            bar.n = progress.step
            bar.refresh()

        clip = render_to_mp4(
            engine, photo, audio, options, args.output, crf=settings.render.crf[options.quality], progress=on_progress
        )
    for note in clip.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {args.output} ({clip.width}x{clip.height}, {audio.duration:.2f} s)")
    return 0


def _animate_via_queue(args, settings, options, photo_bytes, audio_bytes) -> int:
    from avatarbot.service.cli_client import render_via_queue

    def on_progress(job) -> None:
        if job.state == JobState.QUEUED:
            print(messages.queued(getattr(job, "queue_position", None)), file=sys.stderr)
        elif job.total:
            print(messages.progress(job.stage, job.step, job.total, job.eta_s), file=sys.stderr)

    out = render_via_queue(
        settings, photo_bytes, audio_bytes, args.text, args.voice_name, options, args.output, on_progress
    )
    print(f"wrote {out}")
    return 0
