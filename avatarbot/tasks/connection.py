"""Which Redis to talk to, and clients for it.

`redis.url` names the server. When it is empty, `avatarbot run` starts an embedded server and
writes its URL to `<data_dir>/run/redis.url`, so `avatarbot animate --queue` on the same machine
finds it without any configuration.
"""

from __future__ import annotations

from pathlib import Path

import redis

from avatarbot import messages
from avatarbot.errors import QueueUnavailableError


def embedded_url_file(settings) -> Path:
    return Path(settings.data_dir) / "run" / "redis.url"


def resolve_redis_url(settings) -> str:
    """The configured URL, else the running embedded server's, else a friendly error."""
    if settings.redis.url:
        return settings.redis.url
    try:
        url = embedded_url_file(settings).read_text(encoding="utf-8").strip()
    except OSError:
        url = ""
    if url:
        return url
    raise QueueUnavailableError(
        messages.QUEUE_UNAVAILABLE, detail="redis.url is not set and no `avatarbot run` is running on this machine"
    )


def redis_client(settings, *, decode: bool = True) -> redis.Redis:
    """A client for the configured server. `decode=False` for binary values (blobs)."""
    return redis.Redis.from_url(
        resolve_redis_url(settings),
        decode_responses=decode,
        health_check_interval=30,
        socket_keepalive=True,
    )
