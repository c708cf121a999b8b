"""The quota pre-check: a request that can't be accepted is refused before its inputs cost CPU.

bench/load.py found that under load (1,000 requests a minute, most over quota) a bot that decoded,
face-detected and spoke every request before asking the quota fell ~40 s behind. These tests pin
the fix: `Quotas.check` gives `reserve`'s verdict without reserving, `RequestFlow.submit` asks it
before touching the inputs, and the Discord adapter asks it before downloading them.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from avatarbot.errors import NotAnImageError, QuotaError
from avatarbot.service.flow import RenderRequest, RequestFlow
from avatarbot.tasks.quotas import UNRECORDED_GRACE_S, QuotaLimits
from tests.conftest import with_overrides
from tests.test_discord import restore_endpoints  # noqa: F401 - a fixture


async def test_check_gives_the_verdict_and_reserves_nothing(flow, requester):
    quotas = flow.quotas
    limits = QuotaLimits(max_concurrent_per_user=0, max_per_user_per_hour=1, max_per_server_per_hour=0)
    user = (requester.platform, requester.user_id, requester.server_id)
    now = time.time()
    for _ in range(3):  # checks alone never use up the one job this hour
        quotas.check(*user, limits, now)
    quotas.reserve("job-1", *user, limits, now)
    with pytest.raises(QuotaError) as refused:
        quotas.check(*user, limits, now)
    assert refused.value.user_message.startswith("You've made 1 clips in the last hour")
    quotas.release("job-1", *user)
    quotas.check(*user, limits, now)


async def test_a_reservation_counts_before_its_job_record_exists(flow, requester):
    """Found by bench/load.py (Telegram, 1,000 requests a minute): two submits of one user in the
    same millisecond let a third job in, because each reservation's clean-up dropped the other's
    reservation, whose job record was not written yet."""
    quotas = flow.quotas
    limits = QuotaLimits(max_concurrent_per_user=2, max_per_user_per_hour=0, max_per_server_per_hour=0)
    user = (requester.platform, requester.user_id, requester.server_id)
    now = time.time()
    quotas.reserve("being-created-1", *user, limits, now)
    quotas.reserve("being-created-2", *user, limits, now)
    with pytest.raises(QuotaError):
        quotas.check(*user, limits, now)
    with pytest.raises(QuotaError):
        quotas.reserve("third", *user, limits, now)
    # A reservation whose record never came (its bot died in between) stops counting in time.
    later = now + UNRECORDED_GRACE_S + 1
    quotas.reserve("third", *user, limits, later)


async def test_submit_over_quota_is_refused_before_the_inputs_are_read(settings, requester, reply_to, photo_bytes,
                                                                       voice_bytes):  # fmt: skip
    flow = RequestFlow.from_settings(with_overrides(settings, jobs={"max_per_user_per_hour": 1}))
    try:
        first = await flow.submit(requester, reply_to, RenderRequest(photo=photo_bytes, audio=voice_bytes, seed=1))
        # Not a photo at all: under quota this is NotAnImageError; over quota nothing is decoded.
        with pytest.raises(QuotaError):
            await flow.submit(requester, reply_to, RenderRequest(photo=b"not an image", audio=voice_bytes, seed=2))
        await flow.cancel(first.id, requester.user_id)
        other = requester.__class__(requester.platform, requester.user_id + "-b", requester.server_id)
        with pytest.raises(NotAnImageError):
            await flow.submit(other, reply_to, RenderRequest(photo=b"not an image", audio=voice_bytes, seed=2))
    finally:
        await flow.close()


async def test_discord_refuses_over_quota_without_downloading(settings, restore_endpoints, photo_bytes, voice_bytes):  # noqa: F811 - the fixture imported above
    """The Discord adapter asks the quota before fetching attachments from the CDN."""
    from avatarbot import messages
    from tests.test_discord import discord_settings, running_bot, started_fake

    async with started_fake() as fake:
        config = with_overrides(discord_settings(settings, fake), jobs={"max_per_user_per_hour": 1})
        async with running_bot(config, fake):
            user = fake.add_user("busy")

            async def animate():
                photo = fake.add_attachment(photo_bytes, "face.jpg", "image/jpeg", width=256, height=256)
                voice = fake.add_attachment(voice_bytes, f"hello{len(fake.cdn)}.wav", "audio/wav")
                interaction = await fake.slash_command(
                    user, "animate", {}, attachments={"photo": photo, "voice": voice}
                )
                await fake.wait_for(lambda: interaction.followups, 30, "the follow-up")
                return interaction

            first = await animate()
            assert first.followups[0]["content"] == messages.STARTED
            downloads = len(fake.cdn_downloads)
            assert downloads == 2
            second = await animate()
            assert second.followups[0]["content"].startswith("You've made 1 clips in the last hour")
            assert len(fake.cdn_downloads) == downloads  # nothing fetched for a refused request


async def test_requests_still_being_fetched_count_against_the_concurrent_limit(settings, requester):
    """Found by bench/load.py (Telegram): ten quick requests from one person all passed the
    pre-check while none was a job yet, and each cost a download and a decode before `submit`
    refused most of them."""
    flow = RequestFlow.from_settings(with_overrides(settings, jobs={"max_concurrent_per_user": 2}))
    release = asyncio.Event()
    inside = []

    async def request(number):
        async with flow.intake(requester):
            inside.append(number)
            await release.wait()

    try:
        first, second = asyncio.create_task(request(1)), asyncio.create_task(request(2))
        while len(inside) < 2:
            await asyncio.sleep(0.01)
        with pytest.raises(QuotaError) as refused:
            async with flow.intake(requester):
                pytest.fail("a third request got in while two were being fetched")
        assert "2" in refused.value.user_message
        release.set()
        await asyncio.gather(first, second)
        async with flow.intake(requester):  # both done, neither became a job: room again
            pass
        assert not flow._in_intake
    finally:
        await flow.close()


async def test_a_request_being_fetched_counts_against_the_hourly_limit(flow, requester):
    limits = QuotaLimits(max_concurrent_per_user=0, max_per_user_per_hour=1, max_per_server_per_hour=0)
    user = (requester.platform, requester.user_id, requester.server_id)
    flow.quotas.check(*user, limits, time.time(), pending_user=0)
    with pytest.raises(QuotaError) as refused:  # nothing reserved yet: only the pending one counts
        flow.quotas.check(*user, limits, time.time(), pending_user=1)
    assert refused.value.retry_after_s > 0
