"""Per-chat config that admins change from the chat: typed and registered, stored in Redis.

One small hash per (platform, chat id): a Telegram chat or a Discord guild. Every key is a field of
`ChatConfig` (Red-DiscordBot's `Config.register_guild` is the model): writing a key that isn't
registered is an error, not a silently stored typo. A field nobody set reads as its default.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from dataclasses import dataclass

import redis

from avatarbot.tasks import keys

log = logging.getLogger(__name__)

# Names earlier versions stored, read as their current field.
_RENAMED = {"captions": "clip_captions", "telegram_caption_requests": "caption_requests"}


@dataclass(frozen=True)
class ChatConfig:
    default_voice: str | None = None  # TTS voice name; None: tts.default_voice
    quality: str | None = None  # a `vocab.Quality`; None: render.quality
    clip_captions: bool = True  # post the clip with the spoken text as its caption
    caption_requests: bool = False  # a photo's plain caption (no /animate) is a request to speak it
    allowed_channels: tuple[str, ...] = ()  # channel ids the bot answers in; empty: everywhere
    # The server's own quotas; the flow applies them when stricter than the settings file's.
    max_per_user_per_hour: int | None = None
    max_concurrent_per_user: int | None = None
    max_per_server_per_hour: int | None = None
    language: str | None = None  # a shipped language (`messages.LANGUAGES`) for every reply; None: each person's own

    def quota_overrides(self) -> dict:
        return {
            "max_per_user_per_hour": self.max_per_user_per_hour,
            "max_concurrent_per_user": self.max_concurrent_per_user,
            "max_per_server_per_hour": self.max_per_server_per_hour,
        }


FIELDS = {field.name for field in dataclasses.fields(ChatConfig)}


class ChatConfigStore:
    def __init__(self, client: redis.Redis, prefix: str = keys.PREFIX):
        self.redis = client
        self.prefix = prefix

    async def get(self, platform: str, chat_id: str | int) -> ChatConfig:
        return await asyncio.to_thread(self.get_sync, platform, chat_id)

    async def update(self, platform: str, chat_id: str | int, **values) -> ChatConfig:
        """Set the given fields (None: back to the default); unknown names raise KeyError."""
        return await asyncio.to_thread(self.update_sync, platform, chat_id, **values)

    def get_sync(self, platform: str, chat_id: str | int) -> ChatConfig:
        stored = self.redis.hgetall(keys.chat_config(platform, str(chat_id), self.prefix))
        values = {}
        for name, raw in stored.items():
            name = _RENAMED.get(name, name)
            if name not in FIELDS:
                log.warning("chat %s:%s has an unknown config key %r; ignored", platform, chat_id, name)
                continue
            value = json.loads(raw)
            values[name] = tuple(str(item) for item in value) if name == "allowed_channels" else value
        return ChatConfig(**values)

    def update_sync(self, platform: str, chat_id: str | int, **values) -> ChatConfig:
        unknown = set(values) - FIELDS
        if unknown:
            raise KeyError(f"unknown chat config keys: {', '.join(sorted(unknown))}")
        name = keys.chat_config(platform, str(chat_id), self.prefix)
        pipe = self.redis.pipeline()
        for key, value in values.items():
            pipe.hdel(name, key, *[old for old, new in _RENAMED.items() if new == key])
            if value is not None:
                pipe.hset(name, key, json.dumps(list(value) if isinstance(value, tuple) else value))
        pipe.execute()
        return self.get_sync(platform, chat_id)
