"""The bots' /healthz, /readyz and /metrics over real HTTP, on both platforms (tests/chat_sides.py):
the real bot against its fake server, the real flow, Redis and render worker. A request moves the
first-answer histogram and the deliveries counter; one refused (over the hourly quota) moves the
refusals counter; a Telegram bot whose polls fail turns unready, and ready again when they work.
"""

from __future__ import annotations

import asyncio

import pytest

from avatarbot.tasks.redis_server import free_port
from tests.chat_sides import TelegramSide, clips_replying, said, until
from tests.conftest import with_overrides
from tests.test_metrics import fetch, samples, value

pytestmark = pytest.mark.timeout(240)


async def get(url: str) -> tuple[int, str]:
    """A GET from a thread: the endpoints run on a thread of this very process."""
    try:
        return await asyncio.to_thread(fetch, url, 3.0)
    except OSError as error:  # not listening (yet)
        return 0, str(error)


async def scrape(base: str) -> dict:
    status, page = await get(base + "/metrics")
    assert status == 200
    return samples(page)


async def test_bot_endpoints_follow_a_request_a_refusal_and_the_clip(make_side):
    async with make_side() as side:
        port = free_port()
        side.settings = with_overrides(side.settings, metrics={"port": port}, jobs={"max_per_user_per_hour": 1})
        base = f"http://127.0.0.1:{port}"
        platform = {"platform": side.name}
        async with side.running():
            assert await get(base + "/healthz") == (200, "ok\n")
            await _until_async(lambda: get(base + "/readyz"), (200, f"ready: redis, {side.name}\n"), "ready")
            before = await scrape(base)

            alice = side.user(1, "alice")
            photo = await side.photo(alice)
            request = await side.request(alice, photo)
            await until(lambda: clips_replying(side, request), "the clip")
            again = await side.request(alice, photo)  # over max_per_user_per_hour = 1
            await until(lambda: said(side, again), "the refusal")
            await until(lambda: side.jobs() and side.jobs()[0].delivered, "the delivery record")
            after = await scrape(base)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("avatarbot_ack_seconds_count", **platform) == 2  # the acknowledgement and the refusal
    assert value(after, "avatarbot_ack_seconds_sum", **platform) > 0
    assert moved("avatarbot_deliveries_total", outcome="clip", **platform) == 1
    assert moved("avatarbot_refusals_total", code="quota", **platform) == 1


async def test_telegram_bot_is_unready_while_its_polls_fail(lifecycle_settings, samples, render_worker, monkeypatch):
    from avatarbot.bots.telegram import bot as telegram_bot

    monkeypatch.setattr(telegram_bot, "POLL_ERROR_GRACE_S", 0.5)  # ready again soon after a good poll
    side = TelegramSide(lifecycle_settings, samples)
    await side.start()
    try:
        port = free_port()
        side.settings = with_overrides(side.settings, metrics={"port": port})
        base = f"http://127.0.0.1:{port}"
        async with side.running():

            async def status() -> int:
                return (await get(base + "/readyz"))[0]

            await _until_async(status, 200, "ready")
            side.fake.fail("getUpdates", 0, times=3)  # the connection drops, three polls in a row
            await _until_async(status, 503, "unready")
            assert "telegram: not connected" in (await get(base + "/readyz"))[1]
            assert (await get(base + "/healthz"))[0] == 200
            await _until_async(status, 200, "ready again", timeout=60)
    finally:
        await side.stop()


async def _until_async(read, wanted, what: str, timeout: float = 30.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await read() == wanted:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
