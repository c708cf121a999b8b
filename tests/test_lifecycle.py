"""A job's life, written once and run on both chat surfaces.

Each test drives the real bot (python-telegram-bot or discord.py) against its local fake server
(tests/fake_telegram.py, tests/fake_discord.py) through a `Side`: the same request (a voice note
replying to a photo in a group), the same questions (what was posted in reply to it, how many
uploads and edits, which jobs exist). Requests go through the real flow into the real Redis; the
real Celery worker renders them with the lite engine.

The lifecycle itself is the flow's (`avatarbot.service.lifecycle`), so what these tests pin down
holds for every surface: repeats, undeliverable clips, platform 5xx on upload, restarts.
"""

from __future__ import annotations

import asyncio

import pytest

from avatarbot import messages
from avatarbot.tasks import keys
from avatarbot.tasks.jobs import JobStore
from tests.chat_sides import QUIET_S, clips_replying, said, until

pytestmark = pytest.mark.timeout(300)


# --- repeats ---------------------------------------------------------------------------------------
async def test_a_repeat_while_queued_points_at_the_first_and_renders_once(make_side, engine_slowdown):
    engine_slowdown(0.1)  # the first request is still on its way when the second comes
    async with make_side() as side, side.running():
        alice = side.user(1, "alice")
        photo = await side.photo(alice)
        first = await side.request(alice, photo)
        [job] = await until(lambda: [j for j in side.jobs() if j.status_message_id], "the first status message")
        repeat = await side.request(alice, photo)
        # The answer points at the status message already there (a link that opens it).
        pointer = messages.already_asked(side.link_to(side.status_message(job)))
        await until(lambda: pointer in said(side, repeat), "the answer to the repeat")
        await until(lambda: clips_replying(side, first), "the clip")
        await asyncio.sleep(1)
        assert len(side.jobs()) == 1
        assert len(side.clips()) == 1
        assert clips_replying(side, repeat) == []


async def test_a_repeat_after_delivery_gets_the_same_clip_again_without_a_render(make_side):
    async with make_side() as side, side.running():
        alice = side.user(1, "alice")
        photo = await side.photo(alice)
        first = await side.request(alice, photo)
        [clip] = await until(lambda: clips_replying(side, first), "the clip")
        await until(lambda: side.jobs() and side.jobs()[0].delivered, "the delivery")
        repeat = await side.request(alice, photo)
        [again] = await until(lambda: clips_replying(side, repeat), "the clip again, replying to the repeat")
        await until(lambda: messages.CLIP_AGAIN in said(side, repeat), "the note about the repeat")
        [job] = side.jobs()  # nothing new was queued
        assert job.attempts == 1  # rendered once
        assert len(side.clips()) == 2
        # Its buttons act on the same job: Delete there removes that message, not the first clip.
        assert side.buttons(again) == side.buttons(clip)
        assert await side.press(alice, again, side.buttons(again)["delete"]) == messages.DELETED
        await until(lambda: side.deleted(again), "the deletion", 10)
        assert not side.deleted(clip)


async def test_a_repeat_after_the_clip_expired_is_rendered_again(make_side):
    async with make_side() as side, side.running():
        alice = side.user(1, "alice")
        photo = await side.photo(alice)
        first = await side.request(alice, photo)
        await until(lambda: clips_replying(side, first), "the clip")
        [job] = await until(lambda: [j for j in side.jobs() if j.delivered], "the delivery")
        store = JobStore.from_settings(side.settings)
        store.redis.delete(keys.blob(job.clip_key))  # what its TTL does in Redis
        store.redis.close()
        repeat = await side.request(alice, photo)
        await until(lambda: clips_replying(side, repeat), "a new clip, replying to the repeat")
        assert len(side.jobs()) == 2 and len(side.clips()) == 2
        assert messages.CLIP_AGAIN not in said(side, repeat)


# --- clips that can't be delivered -------------------------------------------------------------------
async def test_a_clip_too_big_for_the_chat_is_answered_once(make_side):
    limit = 3 * 1024  # no 1.6 s clip fits, even re-encoded
    async with make_side(upload_limit=limit) as side, side.running():
        alice = side.user(1, "alice")
        photo = await side.photo(alice)
        request = await side.request(alice, photo)
        expected, code, params, uploads_expected = side.too_big(limit)
        await until(lambda: any(expected in text for text in said(side, request)), "the failure")
        await until(lambda: side.jobs() and side.jobs()[0].delivered, "the delivery record")
        uploads, edits = side.upload_attempts(), side.edits()
        await asyncio.sleep(QUIET_S)  # the flow would have offered the job again by now
        assert (side.upload_attempts(), side.edits()) == (uploads, edits)
        assert uploads == uploads_expected and side.clips() == []
        [job] = side.jobs()
        assert job.delivery["error_code"] == code and expected in job.delivery["error"]
        assert job.delivery["error_params"] == params
        assert sum(expected in text for text in said(side, request)) == 1


async def _rendered_while_the_bot_was_down(side, store: JobStore):
    """A request taken by one bot process, rendered to `done` after that process stopped."""
    async with side.running():
        alice = side.user(1, "alice")
        photo = await side.photo(alice)
        request = await side.request(alice, photo)
        [job] = await until(lambda: side.jobs(), "the job")
    done = await until(lambda: (job_now := store.get(job.id)).state == "done" and job_now, "the render")
    assert side.clips() == []
    return request, done


async def test_a_clip_that_expired_before_delivery_is_answered_once(make_side, engine_slowdown):
    engine_slowdown(0.05)  # the render outlives the first bot process
    async with make_side() as side:
        store = JobStore.from_settings(side.settings)
        request, job = await _rendered_while_the_bot_was_down(side, store)
        # Then the clip's blob expires.
        store.redis.delete(keys.blob(job.clip_key))  # what its TTL does in Redis
        async with side.running():
            await until(lambda: messages.CLIP_EXPIRED in " ".join(said(side, request)), "the failure")
            await until(lambda: store.get(job.id).delivered, "the delivery record")
            uploads, edits = side.upload_attempts(), side.edits()
            await asyncio.sleep(QUIET_S)
            assert (side.upload_attempts(), side.edits()) == (uploads, edits) and uploads == 0
        assert store.get(job.id).delivery["error_code"] == "clip_undeliverable"
        assert sum(messages.CLIP_EXPIRED in text for text in said(side, request)) == 1
        store.redis.close()


# --- the platform failing -----------------------------------------------------------------------------
async def test_a_5xx_on_upload_is_retried_and_the_clip_posted_once(make_side):
    # discord.py waits 1 s and 3 s before its retries: a claim long enough that the bot's post
    # deadline (half the claim) doesn't cut them short.
    async with make_side(delivery_claim_s=30) as side, side.running():
        side.fail_uploads(500, 502)
        alice = side.user(1, "alice")
        photo = await side.photo(alice)
        request = await side.request(alice, photo)
        [clip] = await until(lambda: clips_replying(side, request), "the clip")
        await until(lambda: side.jobs() and side.jobs()[0].delivered, "the delivery record")
        await asyncio.sleep(2)
        assert side.upload_attempts() == 3 and len(side.clips()) == 1
        [job] = side.jobs()
        assert job.delivery["message_id"] == str(clip.get("message_id", clip.get("id")))


async def test_a_bot_restarted_between_done_and_delivered_delivers_once(make_side, engine_slowdown):
    engine_slowdown(0.05)  # the render outlives the first bot process
    async with make_side() as side:
        store = JobStore.from_settings(side.settings)
        request, job = await _rendered_while_the_bot_was_down(side, store)
        job_id = job.id
        async with side.running():
            await until(lambda: clips_replying(side, request), "the clip")
            await until(lambda: store.get(job_id).delivered, "the delivery record")
            await asyncio.sleep(2)
        async with side.running():  # and a third start posts nothing either
            await asyncio.sleep(2)
        assert len(side.clips()) == 1
        store.redis.close()
