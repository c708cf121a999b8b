"""The application commands: /animate, the "Animate" message menu, /help and /avatar-settings."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from avatarbot import errors, messages
from avatarbot.bots.discord import attachments
from avatarbot.bots.discord.buttons import AnimateModal
from avatarbot.bots.discord.limits import MAX_AUTOCOMPLETE_CHOICES
from avatarbot.bots.discord.requests import Inputs, check_can_post, first_photo
from avatarbot.bots.discord.server_settings import ServerSettings, channel_list_after
from avatarbot.tts import find_voice, search_voices
from avatarbot.vocab import Quality

if TYPE_CHECKING:
    from avatarbot.bots.discord.bot import AvatarBot

log = logging.getLogger(__name__)

D = messages.DISCORD_DESCRIBE
QUALITIES = tuple(Quality)
QUALITY_CHOICES = [app_commands.Choice(name=q, value=q) for q in QUALITIES]
MOTION_CHOICES = [app_commands.Choice(name=name, value=name) for name in messages.DISCORD_MOTION_CHOICES]


async def voice_autocomplete(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    return [
        app_commands.Choice(name=voice.label[:100], value=voice.name)
        for voice in search_voices(current)[:MAX_AUTOCOMPLETE_CHOICES]
    ]


def register(tree: app_commands.CommandTree, bot: AvatarBot) -> None:
    settings = bot.settings

    @app_commands.command(name="animate", description=D["animate"])
    @app_commands.describe(
        photo=D["photo"], voice=D["voice"], text=D["text"], voice_name=D["voice_name"],
        quality=D["quality"], motion=D["motion"],
    )  # fmt: skip
    @app_commands.choices(quality=QUALITY_CHOICES, motion=MOTION_CHOICES)
    @app_commands.autocomplete(voice_name=voice_autocomplete)
    async def animate(
        interaction: discord.Interaction,
        photo: discord.Attachment,
        voice: discord.Attachment | None = None,
        text: app_commands.Range[str, 1, 4000] | None = None,
        voice_name: str | None = None,
        quality: app_commands.Choice[str] | None = None,
        motion: app_commands.Choice[str] | None = None,
    ) -> None:
        inputs = Inputs(
            photo=photo,
            sound=voice,
            text=text,
            voice_name=voice_name,
            quality=quality.value if quality else None,
            motion=messages.DISCORD_MOTION_CHOICES[motion.value] if motion else None,
        )
        await bot.requests.from_slash(interaction, inputs)

    @app_commands.context_menu(name=messages.DISCORD_CONTEXT_MENU)
    async def animate_message(interaction: discord.Interaction, message: discord.Message) -> None:
        photo = first_photo(message)
        if photo is None:
            await interaction.response.send_message(messages.DISCORD_NO_PHOTO, ephemeral=True)
            return
        try:
            check_can_post(interaction)
            attachments.check_photo(photo, settings)
        except errors.InputError as error:
            await interaction.response.send_message(error.user_message, ephemeral=True)
            return
        await interaction.response.send_modal(AnimateModal(bot, message, photo))

    @app_commands.command(name="help", description=D["help"])
    async def help_command(interaction: discord.Interaction) -> None:
        text = messages.discord_help(
            settings.discord.message_content_intent,
            settings.limits.max_audio_seconds,
            settings.limits.max_text_chars,
        )
        await interaction.response.send_message(text, ephemeral=True)

    server_group = app_commands.Group(
        name="avatar-settings",
        description=D["settings"],
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    async def _answer_with_summary(interaction: discord.Interaction, prefix: str = "") -> None:
        current = await ServerSettings.load(bot.flow.chat_config, interaction.guild_id)
        text = current.summary(settings.tts.default_voice, settings.render.quality)
        await interaction.response.send_message((prefix + " " + text).strip(), ephemeral=True)

    @server_group.command(name="show", description=D["settings_show"])
    async def settings_show(interaction: discord.Interaction) -> None:
        await _answer_with_summary(interaction)

    @server_group.command(name="channel", description=D["settings_channels"])
    @app_commands.describe(channel=D["settings_channel"], allow=D["settings_allow"])
    async def settings_channel(
        interaction: discord.Interaction,
        channel: discord.TextChannel | discord.Thread | discord.ForumChannel,
        allow: bool = True,
    ) -> None:
        current = await ServerSettings.load(bot.flow.chat_config, interaction.guild_id)
        await current.save(allowed_channels=channel_list_after(current, channel, allow))
        await _answer_with_summary(interaction, messages.DISCORD_SETTINGS_SAVED)

    @server_group.command(name="defaults", description=D["settings_defaults"])
    @app_commands.describe(voice_name=D["voice_name"], quality=D["quality"])
    @app_commands.choices(quality=QUALITY_CHOICES)
    @app_commands.autocomplete(voice_name=voice_autocomplete)
    async def settings_defaults(
        interaction: discord.Interaction,
        voice_name: str | None = None,
        quality: app_commands.Choice[str] | None = None,
    ) -> None:
        values = {}
        try:
            if voice_name:
                values["default_voice"] = find_voice(voice_name).name
        except errors.InputError as error:
            await interaction.response.send_message(error.user_message, ephemeral=True)
            return
        if quality:
            values["quality"] = quality.value
        current = await ServerSettings.load(bot.flow.chat_config, interaction.guild_id)
        if values:
            await current.save(**values)
        await _answer_with_summary(interaction, messages.DISCORD_SETTINGS_SAVED if values else "")

    @server_group.command(name="user-limit", description=D["settings_user_limit"])
    @app_commands.describe(per_hour=D["settings_per_hour"])
    async def settings_user_limit(interaction: discord.Interaction, per_hour: app_commands.Range[int, 0, 1000]) -> None:
        current = await ServerSettings.load(bot.flow.chat_config, interaction.guild_id)
        # 0 removes the server's own limit, so the bot-wide jobs.max_per_user_per_hour applies.
        await current.save(max_per_user_per_hour=per_hour or None)
        await _answer_with_summary(interaction, messages.DISCORD_SETTINGS_SAVED)

    for command in (animate, animate_message, help_command, server_group):
        tree.add_command(command)
