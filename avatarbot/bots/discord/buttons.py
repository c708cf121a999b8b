"""Buttons on status and clip messages, and the "Animate" modal.

The buttons are `DynamicItem`s: their custom_id carries the job id, and the classes are
registered in `setup_hook`, so a button on a message posted by yesterday's process still works
today (Discord only sends back the custom_id; no in-memory view has to survive).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import discord

from avatarbot import messages
from avatarbot.bots.discord.limits import MAX_MODAL_TEXT_CHARS, MODERATOR_PERMISSION
from avatarbot.bots.discord.requests import locale_of, requester_of
from avatarbot.service.traits import Action, Press

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
    """What the three buttons share: the job id in the custom_id, the press handed to the flow
    (which checks it against the message it came from and who pressed). Mixed into
    `DynamicItem` subclasses (a DynamicItem subclass must declare its template)."""

    action: Action
    label = ""
    style = discord.ButtonStyle.secondary

    def __init__(self, job_id: str, lang: str = messages.ENGLISH) -> None:
        self.job_id = job_id
        label = messages.text(f"button_{self.action}", lang)
        super().__init__(
            discord.ui.Button(label=label, style=self.style, custom_id=f"avatarbot:{self.action}:{job_id}")
        )

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str]):
        return cls(match["job_id"])

    async def callback(self, interaction: discord.Interaction) -> None:
        bot: AvatarBot = interaction.client  # type: ignore[assignment]

        async def moderator() -> bool:
            return is_moderator(interaction)

        async def acknowledge() -> None:  # Again takes a moment: answer within Discord's 3 s first
            await interaction.response.defer(ephemeral=True, thinking=True)

        press = Press(
            self.action,
            self.job_id,
            str(interaction.channel_id),
            str(interaction.message.id) if interaction.message is not None else None,
            requester_of(interaction.user, interaction.guild_id, locale_of(interaction)),
            moderator,
            acknowledge,
        )
        try:
            outcome = await bot.lifecycle.press(press)
        except Exception:
            log.exception("%s on job %s failed", self.action, self.job_id)
            await _reply(interaction, messages.text("unexpected", messages.resolve(locale_of(interaction))))
            return
        await _reply(interaction, outcome.text)
        if outcome.delete_message and interaction.message is not None:
            # The message belongs to the bot, so the bot token may delete it at any age.
            await interaction.message.delete()


class CancelButton(_JobButton, discord.ui.DynamicItem[discord.ui.Button], template=rf"avatarbot:cancel:{_JOB_ID}"):
    action = Action.CANCEL
    style = discord.ButtonStyle.danger


class AgainButton(_JobButton, discord.ui.DynamicItem[discord.ui.Button], template=rf"avatarbot:again:{_JOB_ID}"):
    action = Action.AGAIN
    style = discord.ButtonStyle.primary


class DeleteButton(_JobButton, discord.ui.DynamicItem[discord.ui.Button], template=rf"avatarbot:delete:{_JOB_ID}"):
    action = Action.DELETE


_BUTTONS = {Action.CANCEL: CancelButton, Action.AGAIN: AgainButton, Action.DELETE: DeleteButton}
DYNAMIC_ITEMS = tuple(_BUTTONS.values())


def view_for(actions: Sequence[Action], job_id: str, lang: str = messages.ENGLISH) -> discord.ui.View | None:
    """Buttons for these actions, labelled in `lang` (None: no buttons; an edit with None removes them)."""
    if not actions:
        return None
    view = discord.ui.View(timeout=None)
    for action in actions:
        view.add_item(_BUTTONS[action](job_id, lang))
    return view


class AnimateModal(discord.ui.Modal):
    """Asks what the photo should say, after Apps -> Animate on a message."""

    def __init__(
        self, bot: AvatarBot, photo_message: discord.Message, photo: discord.Attachment, lang: str = messages.ENGLISH
    ) -> None:
        super().__init__(title=messages.text("discord_modal_title", lang), timeout=15 * 60)
        self.bot = bot
        self.photo_message = photo_message
        self.photo = photo
        self.text = discord.ui.TextInput(
            label=messages.text("discord_modal_text_label", lang),
            style=discord.TextStyle.paragraph,
            max_length=min(MAX_MODAL_TEXT_CHARS, bot.settings.limits.max_text_chars),
            custom_id="text",
        )
        self.voice_name = discord.ui.TextInput(
            label=messages.text("discord_modal_voice_label", lang),
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
