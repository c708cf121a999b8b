"""Per-chat / per-server settings that admins change from the chat (Redis-backed).

One small hash per (platform, chat id): a Telegram chat or a Discord guild (or a channel, for
settings that are per channel). Values are JSON, so lists and numbers round-trip. `get` merges
the stored values over `DEFAULTS`, so a key nobody set still reads as its default.

Known keys (adapters may add their own; keep them documented here):
- default_voice: TTS voice name, or None for tts.default_voice
- quality: "fast" | "standard" | "high", or None for render.quality
- captions: whether the clip is posted with the spoken text as caption
- telegram_caption_requests: whether a photo's plain caption (no /animate) is a request to speak it
- allowed_channels: channel / topic ids the bot answers in; empty: all
- max_per_user_per_hour, max_concurrent_per_user, max_per_server_per_hour: the server's own
  quotas, keyed by the server id (guild id / group chat id); the request flow applies them when
  they are stricter than the settings file's (an admin can lower a limit, never raise it)
"""

from __future__ import annotations

import asyncio
import json

import redis

DEFAULTS: dict = {
    "default_voice": None,
    "quality": None,
    "captions": True,
    "allowed_channels": [],
}


class ChatSettings:
    def __init__(self, client: redis.Redis, prefix: str = "avatarbot"):
        self.redis = client
        self.prefix = prefix

    @classmethod
    def from_settings(cls, settings) -> ChatSettings:
        from avatarbot.tasks.connection import redis_client

        return cls(redis_client(settings))

    def _name(self, platform: str, chat_id: str) -> str:
        return f"{self.prefix}:chat:{platform}:{chat_id}"

    async def get(self, platform: str, chat_id: str | int) -> dict:
        return await asyncio.to_thread(self.get_sync, platform, chat_id)

    async def update(self, platform: str, chat_id: str | int, **values) -> dict:
        """Set the given keys (None deletes one, back to its default); returns the result."""
        return await asyncio.to_thread(self.update_sync, platform, chat_id, **values)

    def get_sync(self, platform: str, chat_id: str | int) -> dict:
        stored = self.redis.hgetall(self._name(platform, str(chat_id)))
        return {**DEFAULTS, **{key: json.loads(value) for key, value in stored.items()}}

    def update_sync(self, platform: str, chat_id: str | int, **values) -> dict:
        name = self._name(platform, str(chat_id))
        pipe = self.redis.pipeline()
        for key, value in values.items():
            if value is None:
                pipe.hdel(name, key)
            else:
                pipe.hset(name, key, json.dumps(value))
        pipe.execute()
        return self.get_sync(platform, chat_id)
