"""What text may be spoken, and in what form it reaches an engine.

Chat text carries things nobody hears: runs of spaces and newlines, zero-width characters
(U+200B–U+200F, U+FEFF) and bidirectional controls (U+202A–U+202E, U+2066–U+2069) that clients
insert around right-to-left words. They are removed before the length is counted, so an invisible
character never pushes a message over the limit or passes an "empty" one. Arabic and Hebrew letters
themselves are kept: right-to-left text is spoken like any other.
"""

from __future__ import annotations

import unicodedata

from avatarbot import messages
from avatarbot.errors import EmptyTextError, TextTooLongError

# Unicode categories that are never heard: Cc (control characters such as NUL) and Cf (format
# characters, which include every zero-width and bidi control listed above).
_SILENT_CATEGORIES = {"Cc", "Cf"}


def clean_text(text: str, max_chars: int) -> str:
    """The text as an engine should get it, or the error a user should see.

    Text with no letter or digit in any script (only emoji, punctuation or symbols) counts as empty:
    espeak-ng reads nothing for it and edge-tts returns no audio, so refusing it up front gives the
    user a clear message instead of a failed render.
    """
    collapsed = " ".join(text.split())
    cleaned = "".join(ch for ch in collapsed if unicodedata.category(ch) not in _SILENT_CATEGORIES)
    cleaned = " ".join(cleaned.split())  # removing a character can leave two spaces side by side
    if not any(ch.isalnum() for ch in cleaned):
        raise EmptyTextError(messages.EMPTY_TEXT, detail=f"nothing speakable in {len(text)} characters")
    if len(cleaned) > max_chars:
        raise TextTooLongError(
            messages.text_too_long(len(cleaned), max_chars),
            detail=f"text of {len(cleaned)} characters, limit {max_chars}",
        )
    return cleaned
