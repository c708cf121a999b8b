"""Which Telegram messages are requests, and what they ask for (no network)."""

from __future__ import annotations

import io
import logging

import pytest
from PIL import Image
from telegram import Message

from avatarbot.bots.telegram import buttons, redact
from avatarbot.bots.telegram.requests import command_args, parse
from avatarbot.service.traits import CLIP_ACTIONS, Action
from tests.fake_telegram import BOT_USER, FakeTelegram

BOT = "avatar_test_bot"


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (120, 100), (10, 200, 30)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture
def tg():
    return FakeTelegram()


def _msg(data: dict) -> Message:
    return Message.de_json(data, None)


def _parse(data: dict, **kw):
    return parse(_msg(data), BOT, bot_id=BOT_USER["id"], **kw)


@pytest.mark.parametrize(
    "words, expected",
    [
        ("/animate Hello there", "Hello there"),
        ("/animate@avatar_test_bot Hi", "Hi"),
        ("/ANIMATE   spaced  ", "spaced"),
        ("/animate\nnext line", "next line"),
        ("/animate", ""),
        ("/animate@other_bot Hi", None),
        ("/animated Hi", None),
        ("/help", None),
        ("animate Hi", None),
        (None, None),
    ],
)
def test_command_args(words, expected):
    assert command_args(words, "animate", BOT) == expected


async def test_voice_reply_to_photo_is_a_request_with_the_largest_size(tg):
    alice = tg.user()
    chat = tg.group()
    photo = tg.send(chat, alice, photo=_jpeg())
    voice = tg.send(chat, alice, voice=b"ogg", voice_duration=4, reply_to=photo)
    parsed = _parse(voice)
    assert parsed.kind == "request"
    assert parsed.photo.file_id == photo["photo"][-1]["file_id"]  # 120x100, not the 90 px thumb
    assert parsed.sound.kind == "voice" and parsed.sound.duration == 4 and parsed.text is None


@pytest.mark.parametrize("kind", ["audio", "video", "video_note"])
async def test_audio_video_and_video_notes_are_sound(tg, kind):
    alice = tg.user()
    chat = tg.private_chat(alice)
    photo = tg.send(chat, alice, photo=_jpeg())
    message = tg.send(chat, alice, reply_to=photo, **{kind: b"data"})
    assert _parse(message).sound.kind == kind


async def test_uncompressed_photo_document_counts_as_photo(tg):
    alice = tg.user()
    chat = tg.private_chat(alice)
    document = tg.send(chat, alice, document=_jpeg(), document_name="me.jpg", document_mime="image/jpeg")
    parsed = _parse(tg.send(chat, alice, voice=b"v", reply_to=document))
    assert parsed.kind == "request" and parsed.photo.kind == "image_document"
    pdf = tg.send(chat, alice, document=b"%PDF", document_name="a.pdf", document_mime="application/pdf")
    assert _parse(tg.send(chat, alice, voice=b"v", reply_to=pdf)).kind == "no_photo"


async def test_caption_and_reply_animate(tg):
    alice = tg.user()
    chat = tg.group()
    captioned = tg.send(chat, alice, photo=_jpeg(), caption="/animate Good morning!")
    parsed = _parse(captioned)
    assert (parsed.kind, parsed.text, parsed.photo.kind) == ("request", "Good morning!", "photo")
    photo = tg.send(chat, alice, photo=_jpeg())
    reply = _parse(tg.send(chat, alice, text="/animate@avatar_test_bot Hi you", reply_to=photo))
    assert (reply.kind, reply.text, reply.photo.file_id) == ("request", "Hi you", photo["photo"][-1]["file_id"])


async def test_animate_with_nothing_usable_asks_for_help(tg):
    alice = tg.user()
    chat = tg.group()
    assert _parse(tg.send(chat, alice, text="/animate Hello")).kind == "help"  # no photo
    photo = tg.send(chat, alice, photo=_jpeg())
    assert _parse(tg.send(chat, alice, text="/animate", reply_to=photo)).kind == "help"  # no text
    text = tg.send(chat, alice, text="just words")
    assert _parse(tg.send(chat, alice, text="/animate hi", reply_to=text)).kind == "help"


async def test_plain_captions_only_where_allowed(tg):
    alice = tg.user()
    chat = tg.group()
    photo = tg.send(chat, alice, photo=_jpeg(), caption="Say cheese")
    assert _parse(photo).kind == "photo_only"
    allowed = _parse(photo, captions_allowed=True)
    assert (allowed.kind, allowed.text) == ("request", "Say cheese")


async def test_voice_without_photo(tg):
    alice = tg.user()
    chat = tg.group()
    assert _parse(tg.send(chat, alice, voice=b"v")).kind == "ignore"
    text = tg.send(chat, alice, text="hello")
    parsed = _parse(tg.send(chat, alice, voice=b"v", reply_to=text))
    assert parsed.kind == "no_photo" and not parsed.replied_to_bot
    bot_message = {"message_id": 99, "date": 0, "chat": chat, "from": BOT_USER, "text": "Queued"}
    assert _parse(tg.send(chat, alice, voice=b"v", reply_to=bot_message)).replied_to_bot


async def test_forum_topic_root_is_not_a_reply(tg):
    alice = tg.user()
    chat = tg.group(forum=True)
    topic = tg.topic(chat)
    voice = tg.send(chat, alice, voice=b"v", topic=topic)
    assert voice["reply_to_message"]["forum_topic_created"]  # how Telegram sends it
    assert _parse(voice).kind == "ignore"
    photo = tg.send(chat, alice, photo=_jpeg(), topic=topic)
    assert _parse(tg.send(chat, alice, voice=b"v", topic=topic, reply_to=photo)).kind == "request"


def test_callback_data_round_trip_and_limit():
    job_id = "0123456789abcdef"
    data = buttons.encode(Action.AGAIN, job_id)
    assert len(data.encode()) <= 64
    assert buttons.decode(data) == buttons.ButtonPress(Action.AGAIN, job_id)
    assert buttons.decode("x:1") is None and buttons.decode("garbage") is None and buttons.decode(None) is None
    with pytest.raises(ValueError):
        buttons.encode(Action.DELETE, "j" * 70)
    keyboard = buttons.keyboard(CLIP_ACTIONS, job_id).to_dict()["inline_keyboard"][0]
    assert [b["callback_data"] for b in keyboard] == ["a:" + job_id, "d:" + job_id]


def test_token_never_reaches_the_log(caplog):
    token = "987654:SECRET-never-log-me"
    redact.install(token)
    caplog.set_level(logging.DEBUG)
    logging.getLogger("httpx").info("HTTP Request: POST %s", f"https://api.telegram.org/bot{token}/getUpdates")
    logging.getLogger("telegram.Bot").debug(f"Set Bot API URL: https://x/bot{token}")
    try:
        raise RuntimeError(f"failed on /bot{token}/sendVideo")
    except RuntimeError:
        logging.getLogger("avatarbot").exception("boom")
    assert token not in caplog.text
    assert caplog.text.count(redact.REPLACEMENT) >= 3
