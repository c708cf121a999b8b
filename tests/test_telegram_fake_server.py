"""The fake Bot API server speaks the protocol the way the real python-telegram-bot client uses
it; if these fail, every Telegram end-to-end test would be testing a fiction."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from telegram import Bot, InputFile, ReplyParameters
from telegram.error import InvalidToken, NetworkError, RetryAfter

from tests.fake_telegram import TOKEN, FakeTelegram


def _jpeg(width: int = 200, height: int = 160) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 90)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture
async def fake():
    server = FakeTelegram()
    server.chat_ids.update({1, 42})  # plain chats these protocol tests post to
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def bot(fake):
    async with Bot(TOKEN, base_url=fake.base_url, base_file_url=fake.base_file_url) as client:
        yield client


async def test_get_me_and_send_message_are_recorded(fake, bot):
    assert bot.username == "avatar_test_bot"  # from getMe during initialize()
    sent = await bot.send_message(chat_id=42, text="hello 123")
    call = fake.calls_to("sendMessage")[0]
    assert call.params == {"chat_id": 42, "text": "hello 123"}
    assert sent.message_id == 1 and sent.text == "hello 123"
    edited = await bot.edit_message_text(chat_id=42, message_id=sent.message_id, text="changed")
    assert edited.text == "changed"


async def test_wrong_token_is_unauthorized(fake):
    async with Bot(TOKEN, base_url=fake.base_url) as _:
        pass
    with pytest.raises(InvalidToken):
        async with Bot("999:wrong", base_url=fake.base_url) as _:
            pass


async def test_long_poll_delivers_injected_updates_in_order(fake, bot):
    alice = fake.user()
    chat = fake.private_chat(alice)
    first = fake.send(chat, alice, text="/start")
    fake.send(chat, alice, photo=_jpeg(), caption="hi")
    updates = await bot.get_updates(timeout=5)
    assert [u.message.message_id for u in updates] == [first["message_id"], first["message_id"] + 1]
    assert updates[0].message.text == "/start" and updates[0].message.entities[0].type == "bot_command"
    assert updates[1].message.photo[-1].width == 200
    # Confirming by offset forgets them; a later message arrives during the long poll.
    assert await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0) == ()
    import asyncio

    asyncio.get_running_loop().call_later(0.2, lambda: fake.send(chat, alice, text="late"))
    late = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=5)
    assert [u.message.text for u in late] == ["late"]


async def test_get_file_and_download_return_the_stored_bytes(fake, bot):
    alice = fake.user()
    message = fake.send(fake.private_chat(alice), alice, voice=b"OggS-voice-bytes", voice_duration=3)
    voice_id = message["voice"]["file_id"]
    file = await bot.get_file(voice_id)
    assert file.file_size == len(b"OggS-voice-bytes")
    assert file.file_path.startswith(fake.base_file_url)
    assert bytes(await file.download_as_bytearray()) == b"OggS-voice-bytes"
    assert fake.download_requests == [file.file_path.split(TOKEN + "/", 1)[1]]


async def test_send_video_multipart_keeps_upload_and_thumbnail(fake, bot):
    alice = fake.user()
    chat = fake.group(forum=True)
    topic = fake.topic(chat)
    request = fake.send(chat, alice, voice=b"v", topic=topic)
    sent = await bot.send_video(
        chat_id=chat["id"],
        video=InputFile(b"\x00\x00\x00\x18ftypmp42video", filename="clip.mp4"),
        width=320,
        height=240,
        duration=3,
        supports_streaming=True,
        thumbnail=InputFile(_jpeg(32, 24), filename="thumb.jpg"),
        message_thread_id=topic["message_id"],
        reply_parameters=ReplyParameters(request["message_id"]),
    )
    call = fake.calls_to("sendVideo")[0]
    assert call.file("video").data.endswith(b"ftypmp42video")
    assert call.file("thumbnail").data[:2] == b"\xff\xd8"
    assert call.params["supports_streaming"] is True and call.params["width"] == 320
    assert call.params["reply_parameters"]["message_id"] == request["message_id"]
    assert sent.reply_to_message.message_id == request["message_id"]
    assert sent.message_thread_id == topic["message_id"] and sent.video.duration == 3


async def test_injected_faults(fake, bot):
    fake.fail("sendMessage", 500)
    with pytest.raises(NetworkError):
        await bot.send_message(chat_id=1, text="x")
    fake.fail("sendMessage", 429, retry_after=3)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(chat_id=1, text="x")
    retry_after = caught.value.retry_after  # an int or a timedelta, depending on PTB's settings
    assert getattr(retry_after, "total_seconds", lambda: retry_after)() == 3
    fake.fail("sendMessage", 0)
    with pytest.raises(NetworkError):
        await bot.send_message(chat_id=1, text="x")
    await bot.send_message(chat_id=1, text="x")  # faults are used up
    assert len(fake.calls_to("sendMessage")) == 1
    assert [c.status for c in fake.calls if c.method == "sendMessage"] == [500, 429, 0, 200]


async def test_unknown_chat_is_refused_like_telegram_does(fake, bot):
    from telegram.error import BadRequest

    with pytest.raises(BadRequest, match="[Cc]hat not found"):
        await bot.send_message(chat_id=999_999, text="anyone there?")
    assert fake.calls_to("sendMessage") == []
