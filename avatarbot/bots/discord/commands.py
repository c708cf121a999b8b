"""The application commands: /animate, the "Animate" message menu, /help and /avatar-settings.

Names and descriptions are `locale_str`s carrying their catalogue key; `MessagesTranslator`
(set on the tree before sync) gives Discord every shipped language's version, so a member's
client shows the commands in its own language. Answers follow `requests.language_of`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from avatarbot import errors, messages
from avatarbot.bots.discord import attachments
from avatarbot.bots.discord.buttons import AnimateModal
from avatarbot.bots.discord.limits import MAX_AUTOCOMPLETE_CHOICES
from avatarbot.bots.discord.requests import Inputs, check_can_post, first_photo, language_of, locale_of
from avatarbot.bots.discord.server_settings import ServerSettings, channel_list_after
from avatarbot.tts import find_voice, search_voices
from avatarbot.vocab import Quality

if TYPE_CHECKING:
    from avatarbot.bots.discord.bot import AvatarBot

log = logging.getLogger(__name__)

QUALITIES = tuple(Quality)
QUALITY_CHOICES = [app_commands.Choice(name=q, value=q) for q in QUALITIES]
MOTION_CHOICES = [app_commands.Choice(name=name, value=name) for name in messages.DISCORD_MOTION_CHOICES]


def D(key: str) -> app_commands.locale_str:  # noqa: N802 (reads like the table it was)
    """A command or option description: English, and the key the translator looks up."""
    return app_commands.locale_str(messages.text(f"describe_{key}"), key=f"describe_{key}")


def _name(key: str) -> app_commands.locale_str:
    return app_commands.locale_str(messages.text(f"name_{key}"), key=f"name_{key}")


class MessagesTranslator(app_commands.Translator):
    """Discord asks, per string and per Discord locale, for the text to register; None keeps
    the English one (languages we don't ship, and strings with no key)."""

    async def translate(
        self, string: app_commands.locale_str, locale: discord.Locale, context: app_commands.TranslationContextTypes
    ) -> str | None:
        key = string.extras.get("key")
        lang = messages.known(locale.value)
        if key is None or lang is None or lang == messages.ENGLISH:
            return None
        return messages.text(key, lang)


LANGUAGE_CHOICES = [
    app_commands.Choice(name=name, value=lang) for lang, name in [("auto", "auto"), *messages.LANGUAGE_NAMES.items()]
]


async def voice_autocomplete(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    return [
        app_commands.Choice(name=voice.label[:100], value=voice.name)
        for voice in search_voices(current)[:MAX_AUTOCOMPLETE_CHOICES]
    ]


def register(tree: app_commands.CommandTree, bot: AvatarBot) -> None:
    settings = bot.settings

    @app_commands.command(name=_name("animate"), description=D("animate"))
    @app_commands.describe(
        photo=D("photo"), voice=D("voice"), text=D("text"), voice_name=D("voice_name"),
        quality=D("quality"), motion=D("motion"),
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

    @app_commands.context_menu(
        name=app_commands.locale_str(messages.text("discord_context_menu"), key="discord_context_menu")
    )
    async def animate_message(interaction: discord.Interaction, message: discord.Message) -> None:
        lang = await language_of(bot, interaction)
        photo = first_photo(message)
        if photo is None:
            await interaction.response.send_message(messages.text("discord_no_photo", lang), ephemeral=True)
            return
        try:
            check_can_post(interaction)
            attachments.check_photo(photo, settings)
        except errors.InputError as error:
            await interaction.response.send_message(messages.for_error(error, lang), ephemeral=True)
            return
        await interaction.response.send_modal(AnimateModal(bot, message, photo, lang))

    @app_commands.command(name=_name("help"), description=D("help"))
    async def help_command(interaction: discord.Interaction) -> None:
        text = messages.discord_help(
            settings.discord.message_content_intent,
            settings.limits.max_audio_seconds,
            settings.limits.max_text_chars,
            await language_of(bot, interaction),
        )
        await interaction.response.send_message(text, ephemeral=True)

    server_group = app_commands.Group(
        name=_name("settings"),
        description=D("settings"),
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    async def _answer_with_summary(interaction: discord.Interaction, saved: bool = False) -> None:
        current = await ServerSettings.load(bot.flow.chat_config, interaction.guild_id)
        lang = current.language_for(locale_of(interaction))
        text = current.summary(settings.tts.default_voice, settings.render.quality, lang)
        prefix = messages.text("settings_saved", lang) if saved else ""
        await interaction.response.send_message((prefix + " " + text).strip(), ephemeral=True)

    @server_group.command(name="show", description=D("settings_show"))
    async def settings_show(interaction: discord.Interaction) -> None:
        await _answer_with_summary(interaction)

    @server_group.command(name="channel", description=D("settings_channels"))
    @app_commands.describe(channel=D("settings_channel"), allow=D("settings_allow"))
    async def settings_channel(
        interaction: discord.Interaction,
        channel: discord.TextChannel | discord.Thread | discord.ForumChannel,
        allow: bool = True,
    ) -> None:
        current = await ServerSettings.load(bot.flow.chat_config, interaction.guild_id)
        await current.save(allowed_channels=channel_list_after(current, channel, allow))
        await _answer_with_summary(interaction, saved=True)

    @server_group.command(name="defaults", description=D("settings_defaults"))
    @app_commands.describe(voice_name=D("voice_name"), quality=D("quality"))
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
            text = messages.for_error(error, await language_of(bot, interaction))
            await interaction.response.send_message(text, ephemeral=True)
            return
        if quality:
            values["quality"] = quality.value
        current = await ServerSettings.load(bot.flow.chat_config, interaction.guild_id)
        if values:
            await current.save(**values)
        await _answer_with_summary(interaction, saved=bool(values))

    @server_group.command(name="user-limit", description=D("settings_user_limit"))
    @app_commands.describe(per_hour=D("settings_per_hour"))
    async def settings_user_limit(interaction: discord.Interaction, per_hour: app_commands.Range[int, 0, 1000]) -> None:
        current = await ServerSettings.load(bot.flow.chat_config, interaction.guild_id)
        # 0 removes the server's own limit, so the bot-wide jobs.max_per_user_per_hour applies.
        await current.save(max_per_user_per_hour=per_hour or None)
        await _answer_with_summary(interaction, saved=True)

    @server_group.command(name="language", description=D("settings_language"))
    @app_commands.describe(language=D("language"))
    @app_commands.choices(language=LANGUAGE_CHOICES)
    async def settings_language(interaction: discord.Interaction, language: app_commands.Choice[str]) -> None:
        current = await ServerSettings.load(bot.flow.chat_config, interaction.guild_id)
        await current.save(language=None if language.value == "auto" else language.value)
        await _answer_with_summary(interaction, saved=True)

    for command in (animate, animate_message, help_command, server_group):
        tree.add_command(command)
