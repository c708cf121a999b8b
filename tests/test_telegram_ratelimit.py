"""The Telegram rate limiter: answers before progress edits, 429s waited out, groups limited."""

from __future__ import annotations

import asyncio

import pytest
from telegram.error import RetryAfter

from avatarbot.bots.telegram.ratelimit import ANSWER, BACKGROUND, PriorityBucket, PriorityRateLimiter, priority_of


async def test_a_waiting_answer_goes_before_edits_that_waited_longer():
    bucket = PriorityBucket(capacity=1, period_s=0.05)
    await bucket.acquire(ANSWER)  # the bucket is now empty: everyone else waits
    order = []

    async def call(name, priority):
        await bucket.acquire(priority)
        order.append(name)

    edits = [asyncio.create_task(call(f"edit{i}", BACKGROUND)) for i in range(3)]
    await asyncio.sleep(0)  # the edits are queued first
    answer = asyncio.create_task(call("answer", ANSWER))
    await asyncio.gather(answer, *edits)
    assert order == ["answer", "edit0", "edit1", "edit2"]


async def test_the_bucket_never_lets_more_through_than_its_capacity_plus_refill():
    bucket = PriorityBucket(capacity=5, period_s=0.1)  # 50 a second
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.gather(*(bucket.acquire(ANSWER) for _ in range(15)))
    # 5 at once, then 10 more at 50/s: at least 0.2 s (a lower bound on correctness, not speed).
    assert loop.time() - started >= 0.19


async def test_a_cancelled_waiter_does_not_hold_up_the_next():
    bucket = PriorityBucket(capacity=1, period_s=0.05)
    await bucket.acquire(ANSWER)
    gives_up = asyncio.create_task(bucket.acquire(ANSWER))
    waits = asyncio.create_task(bucket.acquire(BACKGROUND))
    await asyncio.sleep(0)
    gives_up.cancel()
    await asyncio.wait_for(waits, 1.0)
    assert gives_up.cancelled()


def test_progress_and_tidying_are_background_everything_else_answers():
    assert priority_of("editMessageText") == BACKGROUND
    assert priority_of("sendChatAction") == BACKGROUND
    assert priority_of("deleteMessage") == BACKGROUND
    for endpoint in ("sendMessage", "sendVideo", "sendDocument", "answerCallbackQuery"):
        assert priority_of(endpoint) == ANSWER


async def test_a_429_pauses_then_retries_and_gives_up_after_max_retries():
    limiter = PriorityRateLimiter(max_retries=1)
    calls = []

    async def flooded(times):
        calls.append(times)
        if len(calls) <= times:
            raise RetryAfter(0)
        return {"ok": True}

    assert await limiter.process_request(flooded, (1,), {}, "sendMessage", {"chat_id": 5}, None) == {"ok": True}
    assert len(calls) == 2
    calls.clear()
    with pytest.raises(RetryAfter):
        await limiter.process_request(flooded, (5,), {}, "sendMessage", {"chat_id": 5}, None)
    assert len(calls) == 2  # the first try and one retry


async def test_groups_get_their_own_per_minute_limit_private_chats_and_chatless_calls_none():
    limiter = PriorityRateLimiter(overall_per_s=1000, group_per_minute=2)

    async def ok():
        return True

    async def send(chat_id):
        return await limiter.process_request(ok, (), {}, "sendMessage", {"chat_id": chat_id}, None)

    for _ in range(2):
        assert await send(-100123)
    third_in_group = asyncio.create_task(send(-100123))
    for _ in range(5):  # a private chat and another group are not held up by the first group
        assert await asyncio.wait_for(send(42), 0.5)
    assert await asyncio.wait_for(send(-100999), 0.5)
    assert await asyncio.wait_for(limiter.process_request(ok, (), {}, "getUpdates", {}, None), 0.5)
    await asyncio.sleep(0.1)
    assert not third_in_group.done()  # the group's next token is 30 s away
    third_in_group.cancel()


async def test_a_caller_can_make_an_edit_an_answer():
    limiter = PriorityRateLimiter(overall_per_s=1)
    order = []

    async def call(name):
        order.append(name)
        return True

    await limiter.process_request(call, ("first",), {}, "sendMessage", {"chat_id": 1}, None)  # the bucket is empty
    progress = asyncio.create_task(
        limiter.process_request(call, ("progress",), {}, "editMessageText", {"chat_id": 1}, None)
    )
    await asyncio.sleep(0)
    refusal = asyncio.create_task(
        limiter.process_request(call, ("refusal",), {}, "editMessageText", {"chat_id": 1}, ANSWER)
    )
    await asyncio.gather(progress, refusal)
    assert order == ["first", "refusal", "progress"]
