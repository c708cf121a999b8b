"""A Discord server's own settings, chosen by its admins with /avatar-settings.

Stored with the flow's `ChatConfigStore` (Redis) under the guild id, so every bot process, and the
flow's quota check (it reads `max_per_user_per_hour` for the requester's server), sees the same
values. Keys (registered in `avatarbot.service.chat_config`): `allowed_channels` (channel ids as
strings; empty means everywhere), `default_voice`, `quality`, `max_per_user_per_hour`, `language`
(a shipped language for every reply on the server; None: each member's own).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import discord

from avatarbot import errors, messages
from avatarbot.vocab import Platform

PLATFORM = Platform.DISCORD


@dataclass
class ServerSettings:
    guild_id: int | None = None
    allowed_channels: list[str] = field(default_factory=list)
    voice: str | None = None
    quality: str | None = None
    max_per_user_per_hour: int | None = None
    language: str | None = None

    store: object = None  # the flow's ChatConfigStore

    @classmethod
    async def load(cls, store, guild_id: int | None) -> ServerSettings:
        if guild_id is None:  # direct messages: no server, no server settings
            return cls(store=store)
        config = await store.get(PLATFORM, str(guild_id))
        return cls(
            store=store,
            guild_id=guild_id,
            allowed_channels=list(config.allowed_channels),
            voice=config.default_voice,
            quality=config.quality,
            max_per_user_per_hour=config.max_per_user_per_hour,
            language=config.language,
        )

    async def save(self, **values) -> None:
        """Set keys; a value of None removes the server's own choice (back to the bot's)."""
        await self.store.update(PLATFORM, str(self.guild_id), **values)

    def allows(self, channel) -> bool:
        """Threads count as their parent channel, so allowing #art allows its threads too."""
        if not self.allowed_channels or channel is None:
            return True
        ids = {str(getattr(channel, "id", ""))}
        parent_id = getattr(channel, "parent_id", None)
        if parent_id is not None:
            ids.add(str(parent_id))
        return bool(ids & set(self.allowed_channels))

    def check_channel(self, channel) -> None:
        if not self.allows(channel):
            raise errors.ChannelNotAllowedError(
                messages.discord_channel_not_allowed(self.channel_mentions()),
                detail=f"channel {getattr(channel, 'id', None)} not in {self.allowed_channels}",
            )

    def channel_mentions(self) -> list[str]:
        return [f"<#{channel_id}>" for channel_id in self.allowed_channels]

    def language_for(self, locale: str | None) -> str:
        """The language to answer a member in: the server's choice, else the member's own."""
        return messages.pick(self.language, locale)

    def summary(self, default_voice: str, default_quality: str, lang: str = messages.ENGLISH) -> str:
        return messages.discord_settings(
            self.channel_mentions(),
            self.voice or default_voice,
            self.quality or default_quality,
            self.max_per_user_per_hour,
            self.language,
            lang,
        )


def channel_list_after(settings: ServerSettings, channel: discord.abc.Snowflake, allow: bool) -> list[str]:
    channels = [c for c in settings.allowed_channels if c != str(channel.id)]
    if allow:
        channels.append(str(channel.id))
    return channels
