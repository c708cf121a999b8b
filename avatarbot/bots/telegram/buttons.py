"""Inline buttons whose callback data carries the action and the job id, nothing else.

So a button pressed after a bot restart (or on another bot process) still works: the job record
in Redis knows the rest, and the flow checks the press against the message it came from (the
data alone proves nothing: any client can send any callback data). Telegram allows at most 64
bytes of callback data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import InlineKeyboardButtonLimit

from avatarbot import messages
from avatarbot.service.traits import Action

_CODES = {Action.AGAIN: "a", Action.DELETE: "d", Action.CANCEL: "c"}
_ACTIONS = {code: action for action, code in _CODES.items()}


@dataclass(frozen=True)
class ButtonPress:
    action: Action
    job_id: str


def encode(action: Action, job_id: str) -> str:
    data = f"{_CODES[action]}:{job_id}"
    if len(data.encode()) > InlineKeyboardButtonLimit.MAX_CALLBACK_DATA:
        raise ValueError(f"callback data for job {job_id!r} exceeds Telegram's 64 bytes")
    return data


def decode(data: str | None) -> ButtonPress | None:
    """None for data that isn't ours (old formats, other bots' buttons, garbage)."""
    code, sep, job_id = (data or "").partition(":")
    if not sep or code not in _ACTIONS or not job_id:
        return None
    return ButtonPress(_ACTIONS[code], job_id)


def keyboard(actions: Sequence[Action], job_id: str, lang: str = messages.ENGLISH) -> InlineKeyboardMarkup | None:
    """The buttons, labelled in `lang` (the job's language)."""
    if not actions:
        return None
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(messages.text(f"button_{action}", lang), callback_data=encode(action, job_id))
                for action in actions
            ]
        ]
    )
