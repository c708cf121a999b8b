"""The Telegram bot (python-telegram-bot v22). See `bot.py`.

Kept light on purpose: `run_telegram` imports PTB and the flow only when called.
"""

from __future__ import annotations


def run_telegram(settings) -> int:
    """`avatarbot telegram`: run the bot until interrupted."""
    from .bot import run_telegram as run

    return run(settings)


__all__ = ["run_telegram"]
