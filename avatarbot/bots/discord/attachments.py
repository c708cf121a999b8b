"""Checking and fetching Discord attachments.

Discord tells us a file's declared size, content type and (for voice messages and most audio)
duration before we download it, so obvious mistakes are refused in the 3 s before the
interaction must be answered, and nothing big is fetched for nothing. The download itself only
goes to Discord's CDN (never to a URL a user could choose) and stops at the byte cap even when
the declared size lied. The flow decodes and checks the bytes properly afterwards.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import aiohttp
import discord

from avatarbot import errors, messages
from avatarbot.bots.discord.limits import DISCORD_CDN_HOSTS
from avatarbot.service import intake
from avatarbot.service.traits import Source
from avatarbot.settings import Settings

log = logging.getLogger(__name__)

# Types the media layer reads. Discord derives content_type from the file name; some clients
# send none, so a missing type falls back to the file extension.
PHOTO_TYPES = (
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "image/bmp",
    "image/tiff",
    "image/heic",
    "image/heif",
)
PHOTO_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".webp",
    ".gif",
    ".bmp",
    ".tif",
    ".tiff",
    ".heic",
    ".heif",
)
# Audio files and voice messages (OGG/Opus), plus videos whose soundtrack we can use.
SOUND_TYPE_PREFIXES = ("audio/", "video/")
SOUND_EXTENSIONS = (
    ".ogg",
    ".oga",
    ".opus",
    ".mp3",
    ".wav",
    ".m4a",
    ".aac",
    ".flac",
    ".webm",
    ".mp4",
    ".mov",
    ".mkv",
)

# Per read; the whole download has the flow's overall deadline (limits.download_deadline_s).
READ_TIMEOUT_S = 60.0
DOWNLOAD_CHUNK_BYTES = 64 * 1024


def _media_type(attachment: discord.Attachment) -> str:
    return (attachment.content_type or "").split(";", 1)[0].strip().lower()


def _extension(attachment: discord.Attachment) -> str:
    name = attachment.filename.lower()
    return name[name.rfind(".") :] if "." in name else ""


def is_photo(attachment: discord.Attachment) -> bool:
    media_type = _media_type(attachment)
    if media_type:
        return media_type in PHOTO_TYPES
    return _extension(attachment) in PHOTO_EXTENSIONS


def is_sound(attachment: discord.Attachment) -> bool:
    if attachment.is_voice_message():
        return True
    media_type = _media_type(attachment)
    if media_type:
        return media_type.startswith(SOUND_TYPE_PREFIXES)
    return _extension(attachment) in SOUND_EXTENSIONS


def source_of(attachment: discord.Attachment, settings: Settings, session: aiohttp.ClientSession) -> Source:
    """What the flow's intake needs: the declared size and duration, and the download."""

    async def fetch(cap: int) -> bytes:
        return await download(attachment, settings, session, cap)

    return Source(fetch=fetch, declared_bytes=attachment.size, duration_s=attachment.duration,
                  name=f"attachment {attachment.id}")  # fmt: skip


def check_photo(attachment: discord.Attachment, settings: Settings) -> None:
    """Refuse what is plainly not a usable photo, from the metadata alone (within the 3 s an
    interaction must be answered in): Discord's type, then the flow's declared-size check."""
    if not is_photo(attachment):
        raise errors.NotAnImageError(
            messages.NOT_AN_IMAGE, detail=f"photo attachment has type {attachment.content_type!r}"
        )
    intake.check_declared_size(source_of(attachment, settings, None), settings.limits.max_download_bytes)


def check_sound(attachment: discord.Attachment, settings: Settings) -> None:
    """Refuse what is plainly not a usable recording, from the metadata alone."""
    if not is_sound(attachment):
        raise errors.AudioError(
            messages.NOT_A_RECORDING, detail=f"voice attachment has type {attachment.content_type!r}"
        )
    source = source_of(attachment, settings, None)
    intake.check_declared_sound(source, settings.limits.max_download_bytes, settings.limits.max_audio_seconds)


def allowed_hosts(settings: Settings) -> tuple[str, ...]:
    return DISCORD_CDN_HOSTS + tuple(host.lower() for host in settings.discord.cdn_hosts)


def _check_url(url: str, settings: Settings) -> None:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host not in allowed_hosts(settings):
        raise errors.DownloadError(
            messages.DOWNLOAD_FAILED,
            detail=f"attachment host {host!r} is not a Discord CDN",
        )
    # CDN URLs never carry user info; "https://cdn.discordapp.com@other/..." is a trick to make
    # a reader see one host while the request goes to another.
    if "@" in parts.netloc:
        raise errors.DownloadError(messages.DOWNLOAD_FAILED, detail="attachment URL carries user info")
    # Discord's own CDN is https only; a configured host (a proxy on the same network, the tests'
    # fake server) may be plain http.
    if parts.scheme != "https" and not (parts.scheme == "http" and host in settings.discord.cdn_hosts):
        raise errors.DownloadError(
            messages.DOWNLOAD_FAILED,
            detail=f"attachment URL scheme {parts.scheme!r}",
        )


async def download(
    attachment: discord.Attachment, settings: Settings, session: aiohttp.ClientSession, cap: int | None = None
) -> bytes:
    """The attachment's bytes, never more than `cap` (default: limits.max_download_bytes), from
    Discord's CDN only. The flow runs this under its overall download deadline; nothing here
    retries."""
    _check_url(attachment.url, settings)
    cap = cap or settings.limits.max_download_bytes
    try:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=READ_TIMEOUT_S)
        async with session.get(attachment.url, timeout=timeout, allow_redirects=False) as response:
            if response.status != 200:
                raise errors.DownloadError(
                    messages.DOWNLOAD_FAILED, detail=f"CDN answered {response.status} for {attachment.id}"
                )
            if response.content_length is not None and response.content_length > cap:
                raise errors.FileTooBigError(
                    messages.file_too_big(cap),
                    detail=f"CDN sends {response.content_length} bytes",
                    params={"limit_bytes": cap},
                )
            chunks: list[bytes] = []
            received = 0
            async for chunk in response.content.iter_chunked(DOWNLOAD_CHUNK_BYTES):
                received += len(chunk)
                if received > cap:
                    raise errors.FileTooBigError(
                        messages.file_too_big(cap),
                        detail=f"download of {attachment.id} passed {cap} bytes",
                        params={"limit_bytes": cap},
                    )
                chunks.append(chunk)
    except aiohttp.ClientError as error:
        raise errors.DownloadError(
            messages.DOWNLOAD_FAILED, detail=f"download of {attachment.id} failed: {error!r}"
        ) from error
    return b"".join(chunks)
