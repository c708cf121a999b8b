"""The `avatarbot` command.

Each subcommand's work lives in its feature's module and is imported only when that command
runs, so `avatarbot --help` and the bots start fast and never import torch.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from avatarbot import __version__
from avatarbot.errors import AvatarbotError, QueueUnavailableError
from avatarbot.vocab import Quality

log = logging.getLogger("avatarbot")

DEMO_HELP = "Example: avatarbot animate --photo me.jpg --text 'Hello there!' -o hello.mp4"


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avatarbot",
        description="Bring a photo to life: the face talks or sings the audio you give it.",
    )
    parser.add_argument("--version", action="version", version=f"avatarbot {__version__}")
    parser.add_argument(
        "--config", type=Path, help="TOML settings file (also AVATARBOT_CONFIG); see config/avatarbot.example.toml"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    animate = commands.add_parser(
        "animate",
        help="render a talking clip from a photo and a recording or a line of text",
        description="Render a talking clip from a photo and a recording or a line of text. " + DEMO_HELP,
    )
    animate.add_argument("--photo", type=Path, required=True, help="the photo (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC)")
    speech = animate.add_mutually_exclusive_group(required=True)
    speech.add_argument("--voice", type=Path, help="a recording: voice note, song, or a video's soundtrack")
    speech.add_argument("--text", help="a line of text, spoken by text-to-speech")
    animate.add_argument(
        "--voice-name", help="TTS voice for --text, e.g. en-female (list them with `avatarbot voices`)"
    )
    animate.add_argument("--engine", choices=["lite", "hunyuan"], help="lite: CPU preview (default); hunyuan: GPU")
    animate.add_argument("--quality", choices=list(Quality), help="size preset: 384, 512 or 704 px")
    animate.add_argument("--motion", type=float, help="head-motion intensity, 0 (still) to 2 (lively); default 1")
    animate.add_argument("--seed", type=int, default=0, help="random seed (different seeds, different motion)")
    animate.add_argument("--weights", type=Path, help="HunyuanVideo-Avatar weights directory (engine hunyuan)")
    animate.add_argument("--queue", action="store_true", help="submit through Redis + Celery instead of rendering here")
    animate.add_argument("-o", "--output", type=Path, required=True, help="where to write the MP4")

    commands.add_parser("voices", help="list the text-to-speech voices for --voice-name")
    commands.add_parser("doctor", help="check what is installed and working, and how to fix what is not")

    run = commands.add_parser(
        "run",
        help="run everything on one machine: Redis (embedded if no URL), a worker, the bots with tokens, "
        "and the web page if [web] enabled",
    )
    run.add_argument("--no-worker", action="store_true", help="don't start a render worker here")

    worker = commands.add_parser("worker", help="run a render worker (one per GPU)")
    worker.add_argument("--concurrency", type=int, default=1, help="render processes (default 1: one per GPU)")
    worker.add_argument("--queues", default="gpu", help="Celery queues to consume (default: gpu)")
    worker.add_argument(
        "--gpus",
        help="GPUs that render each clip together, e.g. 0,1,2,3 (engine hunyuan, context parallelism as "
        "hunyuan.context_parallel says); default: one GPU per worker, pinned with CUDA_VISIBLE_DEVICES",
    )

    commands.add_parser("telegram", help="run the Telegram bot")
    commands.add_parser("discord", help="run the Discord bot")
    web = commands.add_parser(
        "web",
        help="serve the web page: try it in a browser, no bot token needed",
        description="Serve a page where you upload a photo, record or type what it says, and watch the clip. "
        "Renders go through the same queue and workers as the bots (a worker must run: `avatarbot run` "
        "with [web] enabled starts both). Password: web.password, web.password_file or AVATARBOT_WEB__PASSWORD.",
    )
    web.add_argument("--host", help="address to listen on (default web.host: 127.0.0.1, this machine only)")
    web.add_argument("--port", type=int, help="port to listen on (default web.port: 7860)")

    convert = commands.add_parser(
        "convert-hunyuan", help="convert official HunyuanVideo-Avatar checkpoints to strict safetensors"
    )
    convert.add_argument("src", type=Path, help="the official ckpts/ directory")
    convert.add_argument("dst", type=Path, help="output directory for the converted weights")
    convert.add_argument("--fp8", action="store_true", help="convert the fp8 checkpoint (with its scale map)")
    convert.add_argument(
        "--transformer-config",
        type=Path,
        help="JSON of transformer config fields that differ from the released 13B model (e.g. a reduced-depth "
        "checkpoint's num_layers); the release itself needs none",
    )
    return parser


def _dispatch(args: argparse.Namespace, settings) -> int:
    """Each command's implementation, imported only when it runs."""
    if args.command == "animate":
        from avatarbot.animate import run_animate

        return run_animate(args, settings)
    if args.command == "voices":
        from avatarbot.tts import list_voices

        for voice in list_voices():
            print(voice.label)
        return 0
    if args.command == "doctor":
        from avatarbot.doctor import run_doctor

        return run_doctor(settings)
    if args.command == "run":
        from avatarbot.runner import run_all

        return run_all(settings, with_worker=not args.no_worker)
    if args.command == "worker":
        from avatarbot.tasks.worker import run_worker

        return run_worker(settings, concurrency=args.concurrency, queues=args.queues, gpus=args.gpus)
    if args.command == "telegram":
        from avatarbot.bots.telegram import run_telegram

        return run_telegram(settings)
    if args.command == "discord":
        from avatarbot.bots.discord import run_discord

        return run_discord(settings)
    if args.command == "web":
        from avatarbot.web import run_web

        return run_web(settings, host=args.host, port=args.port)
    if args.command == "convert-hunyuan":
        from avatarbot.avatar.hunyuan.convert import run_convert

        return run_convert(args.src, args.dst, fp8=args.fp8, transformer_config=args.transformer_config)
    raise AssertionError(args.command)


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from avatarbot.settings import load_settings

    try:
        settings = load_settings(args.config)
        return _dispatch(args, settings)
    except QueueUnavailableError as error:
        # The person at this terminal runs the service: tell them what chat users are never told.
        print(f"avatarbot: the render queue isn't reachable ({error.detail}). Set redis.url, or start "
              "`avatarbot run` on this machine.", file=sys.stderr)  # fmt: skip
        return 2
    except AvatarbotError as error:
        # A refusal, not a crash: the user's sentence on stderr, the detail in the log.
        log.debug("refused: %s (%s)", error.detail, error.code)
        print(f"avatarbot: {error.user_message}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as error:
        print(f"avatarbot: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
