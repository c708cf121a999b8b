"""Buttons on status and clip messages, and the "Animate" modal.

The buttons are `DynamicItem`s: their custom_id carries the job id, and the classes are
registered in `setup_hook`, so a button on a message posted by yesterday's process still works
today (Discord only sends back the custom_id; no in-memory view has to survive).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import discord

from avatarbot import errors, messages
from avatarbot.bots.discord.limits import MAX_MODAL_TEXT_CHARS, MODERATOR_PERMISSION

if TYPE_CHECKING:
    from avatarbot.bots.discord.bot import AvatarBot

log = logging.getLogger(__name__)

# Job ids are short hex strings (avatarbot.tasks.jobs.new_job_id); custom_id holds 100 characters.
_JOB_ID = r"(?P<job_id>[0-9A-Za-z_-]{1,64})"


def is_moderator(interaction: discord.Interaction) -> bool:
    return bool(getattr(interaction.permissions, MODERATOR_PERMISSION, False))


async def _reply(interaction: discord.Interaction, text: str) -> None:
    """An ephemeral answer, whether or not the interaction was already acknowledged."""
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True)
    else:
        await interaction.response.send_message(text, ephemeral=True)


class _JobButton:
    """What the three buttons share: parse the job id, check who pressed, report refusals.
    Mixed into `DynamicItem` subclasses (a DynamicItem subclass must declare its template)."""

    action = ""
    label = ""
    style = discord.ButtonStyle.secondary

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(
            discord.ui.Button(
                label=self.label,
                style=self.style,
                custom_id=f"avatarbot:{self.action}:{job_id}",
            )
        )

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Item,
        match: re.Match[str],
    ):
        return cls(match["job_id"])

    async def callback(self, interaction: discord.Interaction) -> None:
        bot: AvatarBot = interaction.client  # type: ignore[assignment]
        job = await bot.flow.get(self.job_id)
        if job is None:
            # The record expired; only a moderator may still clean up.
            if self.action == "delete" and is_moderator(interaction):
                await self.handle(interaction, bot, None)
                return
            await _reply(interaction, messages.JOB_GONE)
            return
        if str(interaction.user.id) != job.requester.user_id and not is_moderator(interaction):
            await _reply(interaction, messages.NOT_YOURS)
            return
        try:
            await self.handle(interaction, bot, job)
        except errors.AvatarbotError as error:
            log.info("%s on job %s refused: %s", self.action, self.job_id, error.detail)
            await _reply(interaction, error.user_message)
        except Exception:
            log.exception("%s on job %s failed", self.action, self.job_id)
            await _reply(interaction, messages.UNEXPECTED)

    async def handle(self, interaction: discord.Interaction, bot: AvatarBot, job) -> None:
        raise NotImplementedError


class CancelButton(
    _JobButton,
    discord.ui.DynamicItem[discord.ui.Button],
    template=rf"avatarbot:cancel:{_JOB_ID}",
):
    action = "cancel"
    label = messages.BUTTON_CANCEL
    style = discord.ButtonStyle.danger

    async def handle(self, interaction, bot, job) -> None:
        if not job.active:
            await _reply(interaction, messages.ALREADY_FINISHED)
            return
        requester = str(interaction.user.id) == job.requester.user_id
        if await bot.flow.cancel(job.id, str(interaction.user.id), force=not requester):
            await _reply(interaction, messages.CANCELLING)
        else:  # it ended between the press and now
            await _reply(interaction, messages.ALREADY_FINISHED)


class AgainButton(
    _JobButton,
    discord.ui.DynamicItem[discord.ui.Button],
    template=rf"avatarbot:again:{_JOB_ID}",
):
    action = "again"
    label = messages.BUTTON_AGAIN
    style = discord.ButtonStyle.primary

    async def handle(self, interaction, bot, job) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        new_job = await bot.flow.again(job.id, bot.requester_for(interaction.user, interaction.guild_id))
        await bot.post_status_message(new_job, reference=interaction.message)
        await interaction.followup.send(messages.AGAIN_STARTED, ephemeral=True)


class DeleteButton(
    _JobButton,
    discord.ui.DynamicItem[discord.ui.Button],
    template=rf"avatarbot:delete:{_JOB_ID}",
):
    action = "delete"
    label = messages.BUTTON_DELETE

    async def handle(self, interaction, bot, job) -> None:
        await interaction.response.send_message(messages.DELETED, ephemeral=True)
        if interaction.message is not None:
            # The clip message belongs to the bot, so the bot token may delete it at any age.
            await interaction.message.delete()


def progress_view(job_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job_id))
    return view


def result_view(job_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(AgainButton(job_id))
    view.add_item(DeleteButton(job_id))
    return view


DYNAMIC_ITEMS = (CancelButton, AgainButton, DeleteButton)


class AnimateModal(discord.ui.Modal):
    """Asks what the photo should say, after Apps -> Animate on a message."""

    def __init__(self, bot: AvatarBot, photo_message: discord.Message, photo: discord.Attachment) -> None:
        super().__init__(title=messages.DISCORD_MODAL_TITLE, timeout=15 * 60)
        self.bot = bot
        self.photo_message = photo_message
        self.photo = photo
        self.text = discord.ui.TextInput(
            label=messages.DISCORD_MODAL_TEXT_LABEL,
            style=discord.TextStyle.paragraph,
            max_length=min(MAX_MODAL_TEXT_CHARS, bot.settings.limits.max_text_chars),
            custom_id="text",
        )
        self.voice_name = discord.ui.TextInput(
            label=messages.DISCORD_MODAL_VOICE_LABEL,
            required=False,
            max_length=40,
            custom_id="voice_name",
        )
        self.add_item(self.text)
        self.add_item(self.voice_name)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self.bot.requests.from_modal(
            interaction,
            self.photo_message,
            self.photo,
            self.text.value,
            self.voice_name.value or None,
        )
