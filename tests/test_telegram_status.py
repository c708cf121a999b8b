"""Status-message edits (the flow's StatusBoard driving the Telegram surface): throttled per chat,
always ending on the latest words, never after the job is finished."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from telegram import Bot

from avatarbot.bots.telegram import surface as status_module
from avatarbot.bots.telegram.surface import TelegramSurface
from avatarbot.service.status import StatusBoard
from avatarbot.settings import Settings
from avatarbot.tasks.jobs import Job, JobOptions, ReplyTarget, Requester
from tests.fake_telegram import TOKEN, FakeTelegram


@pytest.fixture
async def fake_and_bot():
    fake = FakeTelegram()
    fake.chat_ids.update({7, 42})  # the plain chats these tests edit messages in
    await fake.start()
    async with Bot(TOKEN, base_url=fake.base_url) as bot:
        yield fake, bot
    await fake.stop()


def _job(chat_id: str, job_id: str) -> Job:
    """A job snapshot as the board gets it: only its id and where it replies matter here."""
    return Job(job_id, Requester("telegram", "1"), ReplyTarget(chat_id), JobOptions("", "fast", 1.0, 0), {}, "running")


async def _status_message(fake: FakeTelegram, bot: Bot, chat_id: int) -> int:
    return (await bot.send_message(chat_id, "Queued")).message_id


async def test_bursts_collapse_to_the_latest_text_at_the_chat_rate(fake_and_bot, monkeypatch):
    fake, bot = fake_and_bot
    monkeypatch.setattr(status_module, "PRIVATE_EDIT_INTERVAL_S", 0.3)
    board = StatusBoard(TelegramSurface(bot, Settings()))
    message_id = await _status_message(fake, bot, 42)
    for step in range(10):
        board.show(_job("42", "job1"), message_id, f"Rendering {step}")
        await asyncio.sleep(0.02)
    await fake.wait_for("editMessageText", lambda c: c.params["text"] == "Rendering 9")
    await asyncio.sleep(0.4)
    texts = [c.params["text"] for c in fake.calls_to("editMessageText")]
    assert texts[0] == "Rendering 0" and texts[-1] == "Rendering 9"
    assert len(texts) < 10  # intermediate steps were skipped, not queued
    edits = fake.calls_to("editMessageText")
    assert all(b.at - a.at >= 0.25 for a, b in itertools.pairwise(edits))
    board.show(_job("42", "job1"), message_id, "Rendering 9")  # same words: no edit
    await asyncio.sleep(0.4)
    assert len(fake.calls_to("editMessageText")) == len(texts)
    await board.close()


async def test_no_progress_edit_lands_after_finish(fake_and_bot, monkeypatch):
    fake, bot = fake_and_bot
    monkeypatch.setattr(status_module, "PRIVATE_EDIT_INTERVAL_S", 0.2)
    board = StatusBoard(TelegramSurface(bot, Settings()))
    message_id = await _status_message(fake, bot, 7)
    board.show(_job("7", "job2"), message_id, "Rendering 1")
    board.show(_job("7", "job2"), message_id, "Rendering 2")  # replaces the wish, not queued behind it
    await asyncio.sleep(0.01)  # the edit is in flight
    await board.finish("job2")  # waits for it
    finished_at = asyncio.get_running_loop().time()
    await bot.edit_message_text("Cancelled.", chat_id=7, message_id=message_id)
    board.show(_job("7", "job2"), message_id, "Rendering 3")  # a late report
    await asyncio.sleep(0.5)
    texts = [c.params["text"] for c in fake.calls_to("editMessageText")]
    assert texts == ["Rendering 2", "Cancelled."]
    assert fake.calls_to("editMessageText")[0].at <= finished_at
    await board.close()


async def test_the_edit_that_says_a_request_was_taken_keeps_its_priority_when_progress_overtakes_it():
    from avatarbot.bots.telegram.ratelimit import ANSWER

    class RecordingBot:
        def __init__(self):
            self.edits = []

        async def edit_message_text(self, text, **kwargs):
            self.edits.append((text, kwargs.get("rate_limit_args")))

        async def send_chat_action(self, *args, **kwargs):
            pass

    bot = RecordingBot()
    board = StatusBoard(TelegramSurface(bot, Settings()))
    board.show(_job("-100", "job-1"), 10, "Queued — you're next.", urgent=True)
    board.show(_job("-100", "job-1"), 10, "Rendering ▰▱▱▱▱▱▱▱▱▱ 10%")  # before the first edit went out
    board.show(_job("-100", "job-2"), 11, "Rendering ▰▰▱▱▱▱▱▱▱▱ 20%")
    for _ in range(100):
        if bot.edits:
            break
        await asyncio.sleep(0.01)
    await board.close()
    assert bot.edits[0] == ("Rendering ▰▱▱▱▱▱▱▱▱▱ 10%", ANSWER)  # the newest text, still ahead of progress
