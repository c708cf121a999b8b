"""Turning Discord events (slash command, modal, voice reply) into requests to the flow.

Every path does the same in the same order: check what Discord told us about the attachments
(no download yet) and whether we may post here, defer the interaction (it must be answered within
3 s), then hand the request to the flow's lifecycle with an `Answer` for it. Refusals are
ephemeral where Discord allows it (interactions) and a short reply otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord

from avatarbot import errors, messages
from avatarbot.bots.discord import attachments
from avatarbot.bots.discord.server_settings import ServerSettings
from avatarbot.tasks.jobs import ReplyTarget, Requester
from avatarbot.tts import clean_text, find_voice
from avatarbot.vocab import Platform

if TYPE_CHECKING:
    from avatarbot.bots.discord.bot import AvatarBot

log = logging.getLogger(__name__)


@dataclass
class Inputs:
    photo: discord.Attachment
    sound: discord.Attachment | None = None
    text: str | None = None
    voice_name: str | None = None
    quality: str | None = None
    motion: float | None = None


def requester_of(user: discord.abc.User, guild_id: int | None, locale: str | None = None) -> Requester:
    """Who asks (or presses), on which server their quotas count, and their language (the
    interaction's locale; outside interactions, the server's preferred locale)."""
    return Requester(
        platform=Platform.DISCORD,
        user_id=str(user.id),
        server_id=str(guild_id) if guild_id else None,
        display_name=user.display_name,
        language=locale,
    )


def locale_of(interaction: discord.Interaction) -> str | None:
    """The member's client language (Discord sends it with every interaction)."""
    return str(interaction.locale.value) if interaction.locale else None


async def language_of(bot: AvatarBot, interaction: discord.Interaction) -> str:
    """The language to answer an interaction in (the server's setting, else the member's)."""
    server = await ServerSettings.load(bot.flow.chat_config, interaction.guild_id)
    return server.language_for(locale_of(interaction))


def first_photo(message: discord.Message) -> discord.Attachment | None:
    return next((a for a in message.attachments if attachments.is_photo(a)), None)


def first_sound(message: discord.Message) -> discord.Attachment | None:
    return next((a for a in message.attachments if attachments.is_sound(a)), None)


def check_can_post(interaction: discord.Interaction) -> None:
    """Refuse up front if we could never deliver here (Discord tells us our permissions)."""
    if interaction.guild_id is None:
        return
    permissions = interaction.app_permissions
    in_thread = isinstance(interaction.channel, discord.Thread)
    can_send = permissions.send_messages_in_threads if in_thread else permissions.send_messages
    if not (can_send and permissions.attach_files and permissions.view_channel):
        raise errors.InputError(
            messages.DISCORD_CANT_POST_HERE,
            detail=f"missing permissions in channel {interaction.channel_id}: {permissions.value}",
        )


class Requests:
    def __init__(self, bot: AvatarBot) -> None:
        self.bot = bot
        self.settings = bot.settings

    # --- checks that need no download ------------------------------------------------------------
    def check_inputs(self, inputs: Inputs) -> None:
        attachments.check_photo(inputs.photo, self.settings)
        text = inputs.text if inputs.text and inputs.text.strip() else None
        if inputs.sound is not None and text is not None:
            raise errors.InputError(messages.DISCORD_VOICE_OR_TEXT, detail="both a recording and text")
        if inputs.sound is None and text is None:
            raise errors.InputError(
                messages.DISCORD_NEED_VOICE_OR_TEXT,
                detail="neither a recording nor text",
            )
        if inputs.sound is not None:
            attachments.check_sound(inputs.sound, self.settings)
        else:
            clean_text(text, self.settings.limits.max_text_chars)
        if inputs.voice_name:
            find_voice(inputs.voice_name)

    # --- interactions ------------------------------------------------------------------------------
    async def from_slash(self, interaction: discord.Interaction, inputs: Inputs) -> None:
        if not await self._checked(interaction, inputs):
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self._submit_for_interaction(interaction, inputs, reply_to=None)

    async def from_modal(
        self,
        interaction: discord.Interaction,
        photo_message: discord.Message,
        photo: discord.Attachment,
        text: str,
        voice_name: str | None,
    ) -> None:
        inputs = Inputs(photo=photo, text=text, voice_name=voice_name)
        if not await self._checked(interaction, inputs):
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self._submit_for_interaction(interaction, inputs, reply_to=photo_message)

    async def _checked(self, interaction: discord.Interaction, inputs: Inputs) -> bool:
        try:
            check_can_post(interaction)
            self.check_inputs(inputs)
        except errors.InputError as error:
            log.info("refused request from %s: %s", interaction.user.id, error.detail)
            text = messages.for_error(error, await language_of(self.bot, interaction))
            await interaction.response.send_message(text, ephemeral=True)
            return False
        return True

    async def _submit_for_interaction(
        self, interaction: discord.Interaction, inputs: Inputs, reply_to: discord.Message | None
    ) -> None:
        await self._submit(
            InteractionAnswer(interaction),
            user=interaction.user,
            guild_id=interaction.guild_id,
            channel=interaction.channel,
            channel_id=interaction.channel_id,
            reply_to=reply_to,
            inputs=inputs,
            upload_limit=interaction.filesize_limit,
            locale=locale_of(interaction),
        )

    # --- a voice message or audio file replying to a photo ---------------------------------------
    async def from_reply(self, message: discord.Message) -> None:
        sound = first_sound(message)
        if sound is None or message.reference is None or message.reference.message_id is None:
            return
        if not self.settings.discord.message_content_intent and self.bot.user not in message.mentions:
            return  # without the intent we only act when asked by name
        photo_message = await self._referenced(message)
        if photo_message is None or photo_message.author == self.bot.user:
            return
        photo = first_photo(photo_message)
        if photo is None:
            return
        inputs = Inputs(photo=photo, sound=sound)
        answer = ReplyAnswer(message)
        # Not an interaction: Discord tells us no member's language, only the server's.
        locale = str(message.guild.preferred_locale.value) if message.guild and message.guild.preferred_locale else None
        try:
            self.check_inputs(inputs)
        except errors.AvatarbotError as error:
            log.info("reply request from %s refused: %s (%s)", message.author.id, error.detail, error.code)
            server = await ServerSettings.load(self.bot.flow.chat_config, message.guild.id if message.guild else None)
            await answer.say(messages.for_error(error, server.language_for(locale)))
            return
        await self._submit(
            answer,
            user=message.author,
            guild_id=message.guild.id if message.guild else None,
            channel=message.channel,
            channel_id=message.channel.id,
            reply_to=message,
            inputs=inputs,
            upload_limit=message.guild.filesize_limit if message.guild else None,
            locale=locale,
            quiet_outside_allowed_channels=True,
        )

    async def _referenced(self, message: discord.Message) -> discord.Message | None:
        resolved = message.reference.resolved
        if isinstance(resolved, discord.Message):
            return resolved
        try:
            return await message.channel.fetch_message(message.reference.message_id)
        except discord.HTTPException:
            return None

    # --- the shared part ---------------------------------------------------------------------------
    async def _submit(
        self, answer, *, user: discord.abc.User, guild_id: int | None, channel, channel_id: int | None,
        reply_to: discord.Message | None, inputs: Inputs, upload_limit: int | None, locale: str | None,
        quiet_outside_allowed_channels: bool = False,
    ) -> None:  # fmt: skip
        server = await ServerSettings.load(self.bot.flow.chat_config, guild_id)
        try:
            server.check_channel(channel)
        except errors.ChannelNotAllowedError as error:
            log.info("request in %s refused: %s", getattr(channel, "id", None), error.detail)
            if not quiet_outside_allowed_channels:
                await answer.say(messages.for_error(error, server.language_for(locale)))
            return
        extra = {"guild_id": str(guild_id) if guild_id else None, "upload_limit": upload_limit}
        target = ReplyTarget(
            chat_id=str(channel_id),
            message_id=str(reply_to.id) if reply_to is not None else None,
            extra={key: value for key, value in extra.items() if value is not None},
        )
        await self.bot.lifecycle.handle_request(
            answer,
            requester_of(user, guild_id, locale),
            target,
            attachments.source_of(inputs.photo, self.settings, self.bot.http_session),
            attachments.source_of(inputs.sound, self.settings, self.bot.http_session) if inputs.sound else None,
            inputs.text,
            voice_name=inputs.voice_name,
            quality=inputs.quality,
            motion=inputs.motion,
        )


class InteractionAnswer:
    """Answers a slash command or modal, already deferred (ephemeral) within Discord's 3 s:
    everything else is an ephemeral followup. The deferral is private, so the job's status
    message is a new channel message."""

    status_message_id = None
    language = messages.ENGLISH  # set by the flow

    def __init__(self, interaction: discord.Interaction) -> None:
        self.interaction = interaction

    async def acknowledge(self) -> None:
        """The adapter deferred the interaction before handing it over."""

    async def say(self, text: str) -> None:
        try:
            if self.interaction.response.is_done():
                await self.interaction.followup.send(text, ephemeral=True)
            else:
                await self.interaction.response.send_message(text, ephemeral=True)
        except discord.HTTPException as error:
            # The interaction token may have expired (15 min); the status message carries on.
            log.warning("could not answer interaction %s: %s", self.interaction.id, error.status)

    async def started(self, text: str) -> None:
        await self.say(text)


class ReplyAnswer:
    """Answers a voice message replying to a photo: refusals as a reply; the job's status
    message (posted by the flow) says the rest."""

    status_message_id = None
    language = messages.ENGLISH  # set by the flow

    def __init__(self, message: discord.Message) -> None:
        self.message = message

    async def acknowledge(self) -> None:
        pass

    async def say(self, text: str) -> None:
        try:
            await self.message.reply(text, mention_author=False)
        except discord.HTTPException as error:
            log.warning("could not answer message %s: %s", self.message.id, error.status)

    async def started(self, text: str) -> None:
        pass
