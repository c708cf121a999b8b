"""A request's files, before any GPU time: what the platform declared, then the download.

Declarations are checked first (size, type, duration), so an obvious refusal costs no download.
Each download then runs under one overall deadline (`limits.download_deadline_s`): a host that
never answers, or sends a byte every few seconds, is cut off there and the user reads that the
file couldn't be fetched. A download that timed out is not retried: the same host would most
likely stall again, and the person is better served by an answer now.
"""

from __future__ import annotations

import asyncio
import logging

from avatarbot import messages
from avatarbot.errors import (
    AudioError,
    AudioTooLongError,
    DownloadError,
    EmptyFileError,
    FileTooBigError,
    NotAnImageError,
)
from avatarbot.service.traits import Source

log = logging.getLogger(__name__)

IMAGE_TYPE_PREFIX = "image/"
SOUND_TYPE_PREFIXES = ("audio/", "video/")  # a video's soundtrack is a recording too


def byte_cap(settings, source: Source, platform_max_bytes: int | None) -> int:
    """Our own cap, or the platform's download limit when that is lower."""
    cap = settings.limits.max_download_bytes
    return min(cap, platform_max_bytes) if platform_max_bytes else cap


def check_declared_size(source: Source, cap: int) -> None:
    if source.declared_bytes is None:
        return
    if source.declared_bytes <= 0:
        raise EmptyFileError(messages.EMPTY_FILE, detail=f"{source.name} declares {source.declared_bytes} bytes")
    if source.declared_bytes > cap:
        raise FileTooBigError(
            messages.file_too_big(cap), detail=f"{source.name} declares {source.declared_bytes} bytes",
            params={"limit_bytes": cap},
        )  # fmt: skip


def check_declared_photo(source: Source, cap: int) -> None:
    media_type = (source.media_type or "").lower()
    if media_type and not media_type.startswith(IMAGE_TYPE_PREFIX):
        raise NotAnImageError(messages.NOT_AN_IMAGE, detail=f"{source.name} has type {media_type!r}")
    check_declared_size(source, cap)


def check_declared_sound(source: Source, cap: int, max_seconds: float) -> None:
    media_type = (source.media_type or "").lower()
    if media_type and not media_type.startswith(SOUND_TYPE_PREFIXES):
        raise AudioError(messages.NOT_A_RECORDING, detail=f"{source.name} has type {media_type!r}")
    check_declared_size(source, cap)
    if source.duration_s is not None and source.duration_s > max_seconds:
        raise AudioTooLongError(
            messages.audio_too_long(source.duration_s, max_seconds),
            detail=f"{source.name} declares {source.duration_s:.1f} s",
            params={"seconds": source.duration_s, "limit_seconds": max_seconds},
        )


async def download(source: Source, cap: int, deadline_s: float) -> bytes:
    """The file's bytes within `deadline_s` in all, never more than `cap`."""
    try:
        async with asyncio.timeout(deadline_s):
            data = await source.fetch(cap)
    except TimeoutError:
        raise DownloadError(
            messages.DOWNLOAD_FAILED, detail=f"{source.name}: no complete download within {deadline_s:g} s"
        ) from None
    if len(data) > cap:  # a fetcher that didn't stop at the cap
        raise FileTooBigError(
            messages.file_too_big(cap), detail=f"{source.name} passed {cap} bytes", params={"limit_bytes": cap}
        )
    if not data:
        raise EmptyFileError(messages.EMPTY_FILE, detail=f"{source.name} downloaded empty")
    return data
