"""Read a Telegram message as a request: which photo, which sound, which text.

Pure functions over PTB `Message` objects, no network: the handlers download what is picked
here. The flows (issue 4): a voice note / audio / video / video note replying to a photo; a photo
captioned `/animate <text>` (or plain caption text where a chat admin allowed it); `/animate
<text>` replying to a photo; photos sent uncompressed as documents count as photos.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from telegram import Message

ANIMATE_COMMAND = "animate"
_COMMAND = re.compile(r"/(?P<name>[A-Za-z0-9_]+)(?:@(?P<bot>[A-Za-z0-9_]+))?(?:\s+(?P<rest>.*)|$)", re.DOTALL)

# Document MIME types we treat as a photo or as sound. Anything else is "not a photo".
IMAGE_MIME_PREFIX = "image/"
SOUND_MIME_PREFIXES = ("audio/", "video/")


@dataclass(frozen=True)
class Attachment:
    """A file to fetch through getFile, with what Telegram declared about it."""

    file_id: str
    file_size: int | None
    kind: str  # photo, image_document, voice, audio, video, video_note, sound_document
    duration: int | None = None


@dataclass(frozen=True)
class Parsed:
    """What a message asks for.

    `kind` is "request" (photo + sound or text), "help" (an /animate with nothing usable),
    "no_photo" (sound replying to something that isn't a photo), "photo_only" (a lone photo),
    or "ignore".
    """

    kind: Literal["request", "help", "no_photo", "photo_only", "ignore"]
    photo: Attachment | None = None
    sound: Attachment | None = None
    text: str | None = None
    replied_to_bot: bool = False


def photo_of(message: Message | None) -> Attachment | None:
    """The largest photo size, or an image sent as a document (uncompressed)."""
    if message is None:
        return None
    if message.photo:
        largest = max(message.photo, key=lambda size: size.width * size.height)
        return Attachment(largest.file_id, largest.file_size, "photo")
    document = message.document
    if document and (document.mime_type or "").startswith(IMAGE_MIME_PREFIX):
        return Attachment(document.file_id, document.file_size, "image_document")
    return None


def sound_of(message: Message) -> Attachment | None:
    """A voice note, audio file, video or video note (its soundtrack), or such a document."""
    if message.voice:
        return Attachment(message.voice.file_id, message.voice.file_size, "voice", _seconds(message.voice.duration))
    if message.audio:
        return Attachment(message.audio.file_id, message.audio.file_size, "audio", _seconds(message.audio.duration))
    if message.video:
        return Attachment(message.video.file_id, message.video.file_size, "video", _seconds(message.video.duration))
    if message.video_note:
        note = message.video_note
        return Attachment(note.file_id, note.file_size, "video_note", _seconds(note.duration))
    document = message.document
    if document and (document.mime_type or "").startswith(SOUND_MIME_PREFIXES):
        return Attachment(document.file_id, document.file_size, "sound_document")
    return None


def _seconds(duration) -> int | None:
    """PTB gives durations as int or timedelta depending on its PTB_TIMEDELTA setting."""
    if duration is None:
        return None
    return int(duration.total_seconds()) if hasattr(duration, "total_seconds") else int(duration)


def replied_message(message: Message) -> Message | None:
    """The message this one answers, ignoring a forum topic's root.

    In a forum topic Telegram sets reply_to_message to the topic's creation message on every
    message that isn't an explicit reply; that is not a reply a user made.
    """
    replied = message.reply_to_message
    if replied is None or replied.forum_topic_created is not None:
        return None
    return replied


def command_args(words: str | None, command: str, bot_username: str | None) -> str | None:
    """The text after `/command` or `/command@ourbot` (same line or the next); None when the
    words are no such command (or the command is addressed to another bot)."""
    match = _COMMAND.match(words or "")
    if match is None or match["name"].lower() != command:
        return None
    addressee = match["bot"]
    if addressee and bot_username and addressee.lower() != bot_username.lower():
        return None
    return (match["rest"] or "").strip()


def parse(
    message: Message, bot_username: str | None, *, captions_allowed: bool = False, bot_id: int | None = None
) -> Parsed:
    replied = replied_message(message)
    replied_to_bot = bool(replied and replied.from_user and bot_id and replied.from_user.id == bot_id)
    own_photo = photo_of(message)
    sound = sound_of(message)
    words = message.text if message.text is not None else message.caption
    animate_text = command_args(words, ANIMATE_COMMAND, bot_username)

    if sound is not None and own_photo is None:
        photo = photo_of(replied)
        if photo is None:
            return Parsed("no_photo", sound=sound, replied_to_bot=replied_to_bot) if replied else Parsed("ignore")
        return Parsed("request", photo=photo, sound=sound)

    if animate_text is not None:
        photo = own_photo or photo_of(replied)
        if photo is None or not animate_text:
            return Parsed("help")
        return Parsed("request", photo=photo, text=animate_text)

    if own_photo is not None:
        caption = (message.caption or "").strip()
        if caption and captions_allowed and not caption.startswith("/"):
            return Parsed("request", photo=own_photo, text=caption)
        return Parsed("photo_only", photo=own_photo)
    return Parsed("ignore")
