"""Fetch a user's attachment through the configured Bot API, with a byte cap.

Only `getFile` on our own Bot API server names what we download (never a URL a user typed).
The declared size is checked before anything is fetched, and the stream stops at the cap in
case the declaration was wrong.
"""

from __future__ import annotations

import functools
import logging
import ssl
from pathlib import Path

import httpx
from telegram import Bot
from telegram.constants import FileSizeLimit
from telegram.error import NetworkError

from avatarbot import messages
from avatarbot.errors import EmptyFileError, FileTooBigError
from avatarbot.settings import Settings

from .requests import Attachment

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 60.0
CHUNK_BYTES = 64 * 1024


def download_limit(settings: Settings) -> int:
    """Our own cap, and the cloud Bot API's getFile limit (20 MB) unless self-hosted."""
    limit = settings.limits.max_download_bytes
    if not settings.telegram.local_mode:
        limit = min(limit, int(FileSizeLimit.FILESIZE_DOWNLOAD))
    return limit


def upload_limit(settings: Settings) -> int:
    """What one sendVideo may carry: 50 MB on the cloud API, 2000 MB on a local server."""
    if settings.telegram.upload_limit_bytes:
        return settings.telegram.upload_limit_bytes
    if settings.telegram.local_mode:
        return int(FileSizeLimit.FILESIZE_UPLOAD_LOCAL_MODE)
    return int(FileSizeLimit.FILESIZE_UPLOAD)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every download. Building one loads the whole CA bundle, ~20 ms of CPU
    on the event loop (far more under load): bench/load.py found a new one per download took most
    of the bot's loop time at 1,000 requests a minute."""
    return httpx.create_ssl_context()


def _too_big(limit: int, detail: str) -> FileTooBigError:
    return FileTooBigError(messages.file_too_big(limit), detail=detail)


async def fetch(bot: Bot, attachment: Attachment, settings: Settings) -> bytes:
    limit = download_limit(settings)
    if attachment.file_size is not None and attachment.file_size > limit:
        raise _too_big(limit, f"{attachment.kind} declared {attachment.file_size} bytes > {limit}")
    file = await bot.get_file(attachment.file_id)
    if file.file_size is not None and file.file_size > limit:
        raise _too_big(limit, f"getFile declared {file.file_size} bytes > {limit}")
    if not file.file_path:
        raise _too_big(limit, "getFile returned no file_path (file above the server's download limit)")
    if settings.telegram.local_mode and Path(file.file_path).is_absolute():
        data = _read_local(Path(file.file_path), limit)
    else:
        data = await _stream(file.file_path, settings.telegram.base_file_url, limit)
    if not data:
        raise EmptyFileError(messages.EMPTY_FILE, detail=f"{attachment.kind} {attachment.file_id} is empty")
    return data


def _read_local(path: Path, limit: int) -> bytes:
    """A self-hosted server in --local mode hands out paths on its own disk."""
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise _too_big(limit, f"local file {path.name} exceeds {limit} bytes")
    return data


async def _stream(url: str, base_file_url: str, limit: int) -> bytes:
    # PTB builds the URL as base_file_url + token + "/" + path; anything else is not ours to fetch.
    if not url.startswith(base_file_url):
        raise RuntimeError("refusing a download URL outside the configured Bot API file URL")
    received = bytearray()
    # Errors are re-raised without the URL: it contains the bot token.
    try:
        client = httpx.AsyncClient(timeout=DOWNLOAD_TIMEOUT_S, verify=_tls_context())
        async with client, client.stream("GET", url) as response:
            if response.status_code != 200:
                raise NetworkError(f"file download answered HTTP {response.status_code}")
            async for chunk in response.aiter_bytes(CHUNK_BYTES):
                received.extend(chunk)
                if len(received) > limit:
                    raise _too_big(limit, f"download passed {limit} bytes; stopped")
    except httpx.HTTPError as error:
        raise NetworkError(f"file download failed: {type(error).__name__}") from None
    return bytes(received)
