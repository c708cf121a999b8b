"""Hostile users and hostile hosts, on both chat surfaces (the cases of issue 13).

Run through the real bots against their fake servers (see tests/chat_sides.py): buttons pressed
by someone else or with forged data, file hosts that never answer or trickle, a file path that
climbs out of the Bot API's file root, a chat that refuses the bot's first answer. Each ends with
the right message (or, where the platform lets us say nothing, nothing), within the download
deadline, and with no job made.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from avatarbot import messages
from tests.chat_sides import DELIVERY_CLAIM_S, TelegramSide, clips_replying, said, until

pytestmark = pytest.mark.timeout(300)

DEADLINE_S = 2.0  # limits.download_deadline_s in the download tests
# What an answer may take beyond the deadline: the first answer, the edit, the poll loop.
ANSWER_SLACK_S = 6.0


async def _delivered_clip(side, user):
    photo = await side.photo(user)
    request = await side.request(user, photo)
    [clip] = await until(lambda: clips_replying(side, request), "the clip")
    await until(lambda: side.jobs() and all(job.delivered for job in side.jobs()), "the delivery")
    return request, clip


# --- buttons ----------------------------------------------------------------------------------------
async def test_again_and_delete_by_someone_else_are_refused(make_side):
    async with make_side() as side, side.running():
        alice, bob, carol = side.user(1, "alice"), side.user(2, "bob"), side.user(3, "carol")
        side.make_moderator(carol)
        _, clip = await _delivered_clip(side, alice)
        buttons = side.buttons(clip)

        assert await side.press(bob, clip, buttons["again"]) == messages.NOT_YOURS
        assert await side.press(bob, clip, buttons["delete"]) == messages.NOT_YOURS
        await asyncio.sleep(1)
        assert len(side.jobs()) == 1 and len(side.clips()) == 1 and not side.deleted(clip)
        # A moderator of the chat may clean up.
        assert await side.press(carol, clip, buttons["delete"]) == messages.DELETED
        await until(lambda: side.deleted(clip), "the deletion", 10)


async def test_cancel_by_someone_else_is_refused(make_side, engine_slowdown):
    engine_slowdown(0.3)  # the job is still running when the buttons are pressed
    async with make_side() as side, side.running():
        alice, bob = side.user(1, "alice"), side.user(2, "bob")
        photo = await side.photo(alice)
        await side.request(alice, photo)
        job = await until(lambda: [j for j in side.jobs() if j.status_message_id], "the status message")
        status = side.status_message(job[0])
        cancel = await until(lambda: side.buttons(side.status_message(job[0])).get("cancel"), "the Cancel button")

        assert await side.press(bob, status, cancel) == messages.NOT_YOURS
        await asyncio.sleep(1)
        [still] = side.jobs()
        assert still.state != "cancelled"
        assert await side.press(alice, status, cancel) == messages.CANCELLING
        await until(lambda: side.jobs()[0].state == "cancelled", "the cancellation", 30)


async def test_a_forged_button_payload_acts_on_nothing(make_side):
    """Bob presses Delete (and Again) on Alice's clip with button data naming his own job: the
    press is bound to the message it came from, so neither clip is touched and no job is made.
    (discord.py already drops a custom_id that isn't on the pressed message; Telegram delivers
    any callback data a client sends, and the flow refuses it.)"""
    async with make_side() as side, side.running():
        alice, bob = side.user(1, "alice"), side.user(2, "bob")
        _, alice_clip = await _delivered_clip(side, alice)
        _, bob_clip = await _delivered_clip(side, bob)
        bob_job = next(job for job in side.jobs() if job.delivery["message_id"] == _message_id(bob_clip))

        for action in ("delete", "again"):
            answer = await side.press(bob, alice_clip, side.forged(action, bob_job.id))
            assert answer in (messages.NOT_THIS_MESSAGE, None)
            if side.name == "telegram":
                assert answer == messages.NOT_THIS_MESSAGE
        await asyncio.sleep(1)
        assert not side.deleted(alice_clip) and not side.deleted(bob_clip)
        assert len(side.jobs()) == 2 and len(side.clips()) == 2


def _message_id(message: dict) -> str:
    return str(message.get("message_id", message.get("id")))


# --- file hosts ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["stall", "trickle"])
async def test_a_file_host_that_stalls_or_trickles_is_cut_off_at_the_deadline(make_side, mode):
    async with make_side(download_deadline_s=DEADLINE_S) as side, side.running():
        alice = side.user(1, "alice")
        photo = await side.photo(alice)
        side.hostile_host(mode)
        started = time.monotonic()
        request = await side.request(alice, photo)
        await until(lambda: messages.DOWNLOAD_FAILED in said(side, request), "the answer", DEADLINE_S + ANSWER_SLACK_S)
        took = time.monotonic() - started
        assert DEADLINE_S <= took < DEADLINE_S + ANSWER_SLACK_S, took
        await asyncio.sleep(1)
        assert side.jobs() == []
        assert said(side, request).count(messages.DOWNLOAD_FAILED) == 1  # answered once: no retry


@pytest.fixture
async def telegram_side(lifecycle_settings, samples, render_worker):
    """The Telegram side alone, for what only Telegram can do to the bot, running."""
    side = TelegramSide(lifecycle_settings, samples)
    await side.start()
    try:
        async with side.running():
            yield side
    finally:
        await side.stop()


async def test_a_file_path_outside_the_bot_api_file_root_is_not_requested(telegram_side):
    side = telegram_side
    alice = side.user(1, "alice")
    photo = await side.photo(alice)
    for file_id, (path, data) in list(side.fake.files.items()):
        side.fake.files[file_id] = ("../../../secret/" + path, data)
    request = await side.request(alice, photo)
    await until(lambda: messages.DOWNLOAD_FAILED in said(side, request), "the answer", 30)
    assert side.fake.stray_requests == [] and side.fake.download_requests == []
    assert side.jobs() == []


async def test_a_chat_that_refuses_the_first_answer_gets_nothing_fetched_or_rendered(telegram_side):
    """An update from a chat the bot was removed from: its first answer gets 403, and the request
    stops there (Discord has no such case: an interaction can always be answered, and a channel
    where the bot can't post is refused before the deferral)."""
    side = telegram_side
    alice = side.user(1, "alice")
    photo = await side.photo(alice)
    side.fake.fail("sendMessage", 403, description="Forbidden: bot was kicked from the supergroup chat")
    await side.request(alice, photo)
    await until(lambda: [c for c in side.fake.calls if c.method == "sendMessage"], "the refused answer", 30)
    await asyncio.sleep(DELIVERY_CLAIM_S)
    assert side.fake.calls_to("getFile") == [] and side.fake.download_requests == []
    assert side.jobs() == []
