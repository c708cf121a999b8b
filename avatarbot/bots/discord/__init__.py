"""The Discord bot: slash command, message context menu and reply-with-voice, over the shared flow.

Kept light on purpose: importing this package must not import discord.py (the CLI and
`avatarbot run` import it just to find `run_discord`). The bot lives in `bot.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from avatarbot.settings import Settings


def run_discord(settings: Settings) -> int:
    """Run the bot until interrupted; the exit status for the CLI."""
    from avatarbot.bots.discord.bot import run

    return run(settings)


__all__ = ["run_discord"]
