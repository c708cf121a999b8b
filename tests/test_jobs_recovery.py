"""Recovery paths: orphaned jobs re-queued at worker start, undelivered outcomes offered again,
a Redis outage seen by a bot, and `animate --queue`'s client end to end."""

from __future__ import annotations

import asyncio

import pytest
from conftest import voiced_wav, wait_for_job, with_overrides

from avatarbot import messages
from avatarbot.avatar.engine import RenderOptions
from avatarbot.errors import QueueUnavailableError, RenderError
from avatarbot.service.flow import RenderRequest, RequestFlow
from avatarbot.tasks.jobs import JobOptions

pytestmark = pytest.mark.timeout(180)


async def test_orphaned_job_is_requeued_when_a_worker_starts(
    render_worker, celery_app, settings, flow, requester, reply_to, photo_bytes, voice_bytes
):
    from avatarbot.tasks.recovery import orphaned_jobs, requeue_orphans

    job = await flow.submit(requester, reply_to, RenderRequest(photo=photo_bytes, audio=voice_bytes))
    await asyncio.to_thread(wait_for_job, flow.store, job.id, "done")
    # A job whose worker was SIGKILLed with its parent: running, lease gone, no message left.
    orphan = flow.store.create(requester, reply_to, job.options, job.inputs)
    assert flow.store.claim(orphan.id, "gone:1:1:x", lease_s=0.2) == "claimed"
    await asyncio.sleep(0.3)
    assert orphan.id in orphaned_jobs(flow.store)
    assert await asyncio.to_thread(requeue_orphans, settings, celery_app) >= 1
    done = await asyncio.to_thread(wait_for_job, flow.store, orphan.id, {"done", "failed"})
    assert done.state == "done" and done.attempts == 2
    assert [state for state, _ in flow.store.history(orphan.id)] == ["running", "queued", "running", "encoding", "done"]
    assert orphan.id not in orphaned_jobs(flow.store)
    assert flow.store.requeue_orphan(orphan.id) is False  # finished jobs stay finished


async def test_an_abandoned_delivery_is_offered_again(flow, requester, reply_to):
    from avatarbot.service.flow import Requester

    platform = "reoffer-" + requester.user_id
    me = Requester(platform, requester.user_id, None)
    job = flow.store.create(me, reply_to, JobOptions("lite", "fast", 1.0, 1), {})
    flow.store.fail(job.id, None, code="render_failed", user_message=messages.RENDER_FAILED)
    updates = flow.updates(platform, poll_s=0.02, reoffer_s=0.3)
    first = await asyncio.wait_for(updates.__anext__(), 5)
    assert first.id == job.id and await flow.begin_delivery(job.id)
    await flow.abandon_delivery(job.id)  # posting failed
    again = await asyncio.wait_for(updates.__anext__(), 5)  # nothing changed, but it is due again
    assert again.id == job.id and await flow.begin_delivery(job.id)
    await flow.finish_delivery(job.id, {"message_id": "3"})
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(updates.__anext__(), 1.0)  # delivered: never offered again
    await updates.aclose()


async def test_redis_outage_refuses_submits_politely_and_watchers_resume(
    tmp_path, base_settings, requester, reply_to, photo_bytes, voice_bytes
):
    from avatarbot.tasks.redis_server import start_redis_server

    server = start_redis_server(tmp_path / "redis")
    settings = with_overrides(base_settings, redis={"url": server.url}).model_copy(update={"data_dir": tmp_path})
    flow = RequestFlow.from_settings(settings)
    try:
        platform = "outage"
        job = flow.store.create(
            requester.__class__(platform, requester.user_id, None), reply_to, JobOptions("lite", "fast", 1.0, 1), {}
        )
        updates = flow.updates(platform, poll_s=0.05)
        assert (await asyncio.wait_for(updates.__anext__(), 5)).id == job.id
        server.stop()
        with pytest.raises(QueueUnavailableError) as refused:
            await flow.submit(requester, reply_to, RenderRequest(photo=photo_bytes, audio=voice_bytes))
        assert refused.value.user_message == messages.QUEUE_UNAVAILABLE
        pending = asyncio.ensure_future(updates.__anext__())
        await asyncio.sleep(0.5)
        assert not pending.done()  # the watcher waits instead of dying
        server = start_redis_server(tmp_path / "redis", port=server.port)  # appendonly: the job is back
        flow.store.cancel(job.id, messages.CANCELLED)
        resumed = await asyncio.wait_for(pending, 15)
        assert resumed.id == job.id and resumed.state == "cancelled"
        await updates.aclose()
    finally:
        await flow.close()
        server.stop()


def test_render_via_queue_writes_the_clip_and_reports_progress(
    render_worker, engine_slowdown, settings, photo_bytes, tmp_path
):
    from avatarbot.service.cli_client import render_via_queue

    engine_slowdown(0.05)  # 25 frames: long enough for the client's polls to see it running

    seen = []
    out = render_via_queue(
        settings, photo_bytes, voiced_wav(seconds=1.0), None, None, RenderOptions(quality="fast", seed=7),
        tmp_path / "sub" / "clip.mp4", seen.append,
    )  # fmt: skip
    assert out.stat().st_size > 1000
    states = [job.state for job in seen]
    assert states[0] == "queued" and "running" in states
    assert any(job.stage == "rendering" and job.total > 1 for job in seen)
    assert seen[-1].finished and seen[-1].options.seed == 7
    job = seen[-1]
    store_job = RequestFlow.from_settings(settings).store.get(job.id)
    assert store_job.delivered and store_job.delivery == {"path": str(out)}


def test_render_via_queue_raises_the_jobs_failure(render_worker, base_settings, settings, photo_bytes, tmp_path):
    from avatarbot.service.cli_client import render_via_queue
    from avatarbot.tasks import render_job

    class Broken:
        name = "broken"

        def render(self, *args, **kwargs):
            raise RuntimeError("engine bug")

    lite = render_job.engine_for("lite", base_settings)
    render_job.install_engine("lite", Broken())
    try:
        with pytest.raises(RenderError) as failed:
            render_via_queue(
                settings, photo_bytes, voiced_wav(seconds=1.0), None, None, RenderOptions(quality="fast", seed=8),
                tmp_path / "clip.mp4", lambda job: None,
            )  # fmt: skip
    finally:
        render_job.install_engine("lite", lite)
    assert failed.value.user_message == messages.RENDER_FAILED
    assert not (tmp_path / "clip.mp4").exists()
