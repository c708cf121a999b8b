"""Inline buttons whose callback data carries everything needed to act on them.

The data is `<action>:<job id>` and nothing else, so a button pressed after a bot restart (or on
another bot process) still works: the job record in Redis knows the rest. Telegram allows at
most 64 bytes of callback data.
"""

from __future__ import annotations

from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import InlineKeyboardButtonLimit

from avatarbot import messages

AGAIN = "a"
DELETE = "d"
CANCEL = "c"
_ACTIONS = {AGAIN, DELETE, CANCEL}


@dataclass(frozen=True)
class ButtonPress:
    action: str
    job_id: str


def encode(action: str, job_id: str) -> str:
    data = f"{action}:{job_id}"
    if len(data.encode()) > InlineKeyboardButtonLimit.MAX_CALLBACK_DATA:
        raise ValueError(f"callback data for job {job_id!r} exceeds Telegram's 64 bytes")
    return data


def decode(data: str | None) -> ButtonPress | None:
    """None for data that isn't ours (old formats, other bots' buttons, garbage)."""
    action, sep, job_id = (data or "").partition(":")
    if not sep or action not in _ACTIONS or not job_id:
        return None
    return ButtonPress(action, job_id)


def clip_keyboard(job_id: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(messages.TELEGRAM_BUTTON_AGAIN, callback_data=encode(AGAIN, job_id)),
                InlineKeyboardButton(messages.TELEGRAM_BUTTON_DELETE, callback_data=encode(DELETE, job_id)),
            ]
        ]
    )


def status_keyboard(job_id: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(messages.TELEGRAM_BUTTON_CANCEL, callback_data=encode(CANCEL, job_id)),
            ]
        ]
    )
