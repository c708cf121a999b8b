"""Fetch a user's attachment through the configured Bot API, with a byte cap.

Only `getFile` on our own Bot API server names what we download (never a URL a user typed).
The flow checks the declared size before anything is fetched and gives the whole download one
deadline; the stream stops at the cap in case the declaration was wrong, and the path getFile
names is normalised and must stay under our Bot API's file root.
"""

from __future__ import annotations

import functools
import logging
import posixpath
import ssl
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx
from telegram import Bot
from telegram.constants import FileSizeLimit
from telegram.error import TelegramError

from avatarbot import messages
from avatarbot.errors import DownloadError, FileTooBigError
from avatarbot.settings import Settings

from .requests import Attachment

log = logging.getLogger(__name__)

# Per read; the whole download has the flow's overall deadline (limits.download_deadline_s).
READ_TIMEOUT_S = 60.0
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
    return FileTooBigError(messages.file_too_big(limit), detail=detail, params={"limit_bytes": limit})


def _fetch_failed(detail: str) -> DownloadError:
    return DownloadError(messages.DOWNLOAD_FAILED, detail=detail)


async def fetch(bot: Bot, attachment: Attachment, settings: Settings, cap: int | None = None) -> bytes:
    """The file's bytes, never more than `cap` (default: `download_limit`). The flow checked the
    declared size and runs this under its overall download deadline; nothing here retries (a
    stalled host would stall again)."""
    cap = cap or download_limit(settings)
    try:
        file = await bot.get_file(attachment.file_id)
    except TelegramError as error:
        raise _fetch_failed(f"getFile for {attachment.kind} {attachment.file_id}: {error}") from None
    if file.file_size is not None and file.file_size > cap:
        raise _too_big(cap, f"getFile declared {file.file_size} bytes > {cap}")
    if not file.file_path:
        raise _too_big(cap, "getFile returned no file_path (file above the server's download limit)")
    if settings.telegram.local_mode and Path(file.file_path).is_absolute():
        return _read_local(Path(file.file_path), cap)
    return await _stream(file.file_path, settings.telegram.base_file_url + bot.token + "/", cap)


def _read_local(path: Path, limit: int) -> bytes:
    """A self-hosted server in --local mode hands out paths on its own disk."""
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise _too_big(limit, f"local file {path.name} exceeds {limit} bytes")
    return data


def checked_file_url(url: str, files_root: str) -> str:
    """`url` if it names a file under our Bot API's file root, after normalising its path
    (`/file/bot<token>/../../x` is outside, whatever its prefix says); else DownloadError."""
    parts, root = urlsplit(url), urlsplit(files_root)
    raw_path = unquote(parts.path)
    normal = posixpath.normpath(raw_path)
    inside = normal.startswith(root.path) and ".." not in raw_path.split("/")
    if (parts.scheme, parts.netloc) != (root.scheme, root.netloc) or not inside or parts.query or parts.fragment:
        raise _fetch_failed("getFile named a path outside the Bot API file root")
    return url


async def _stream(url: str, files_root: str, limit: int) -> bytes:
    url = checked_file_url(url, files_root)
    received = bytearray()
    # Errors are re-raised without the URL: it contains the bot token.
    try:
        client = httpx.AsyncClient(timeout=READ_TIMEOUT_S, verify=_tls_context(), follow_redirects=False)
        async with client, client.stream("GET", url) as response:
            if response.status_code != 200:
                raise _fetch_failed(f"file download answered HTTP {response.status_code}")
            async for chunk in response.aiter_bytes(CHUNK_BYTES):
                received.extend(chunk)
                if len(received) > limit:
                    raise _too_big(limit, f"download passed {limit} bytes; stopped")
    except httpx.HTTPError as error:
        raise _fetch_failed(f"file download failed: {type(error).__name__}") from None
    return bytes(received)
