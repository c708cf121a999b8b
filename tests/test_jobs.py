"""The job system end to end: a real redis-server, a real Celery worker, the real render task
with the lite engine, real ffmpeg. See conftest.py for the fixtures."""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import wait_for, wait_for_job, with_overrides

from avatarbot import messages
from avatarbot.errors import InputError, InputsExpiredError, NotAnImageError, QuotaError
from avatarbot.service.flow import RenderRequest, Requester
from avatarbot.tasks import keys
from avatarbot.tasks.app import GPU_QUEUE, RENDER_TASK
from avatarbot.tasks.jobs import JobOptions

pytestmark = pytest.mark.timeout(180)


async def _collect_until_finished(flow, platform: str, job_id: str, timeout_s: float = 90.0) -> list:
    """Every snapshot of `job_id` that `updates()` yields, until its outcome is known."""
    seen = []

    async def watch():
        async for job in flow.updates(platform, poll_s=0.02):
            if job.id == job_id:
                seen.append(job)
                if job.finished:
                    return

    await asyncio.wait_for(watch(), timeout_s)
    return seen


def _send(celery_app, job_id: str, task_id: str | None = None):
    return celery_app.send_task(RENDER_TASK, args=[job_id], queue=GPU_QUEUE, task_id=task_id)


# --- submit -> progress -> done -> delivered ------------------------------------------------------
async def test_submit_reports_states_in_order_and_ends_with_a_valid_mp4(
    render_worker, engine_slowdown, flow, requester, reply_to, photo_bytes, voice_bytes, tmp_path
):
    from avatarbot.media.video import probe

    engine_slowdown(0.04)  # 40 frames in ~1.6 s: several throttled progress writes, with an ETA
    job = await flow.submit(requester, reply_to, RenderRequest(photo=photo_bytes, audio=voice_bytes, quality="fast"))
    assert job.state == "queued" and not job.duplicate
    assert job.requester == requester and job.reply_target == reply_to
    seen = await _collect_until_finished(flow, "telegram", job.id)

    order = ["queued", "running", "encoding", "done"]
    observed = [snapshot.state for snapshot in seen]
    assert observed == sorted(observed, key=order.index), observed  # never goes backwards
    assert observed[-1] == "done"
    assert [state for state, _ in flow.store.history(job.id)] == ["running", "encoding", "done"]
    rendering = [s for s in seen if s.stage == "rendering"]
    assert rendering and all(0 <= s.step <= s.total for s in rendering)
    assert any(s.eta_s is not None for s in rendering)

    done = seen[-1]
    assert (done.width, done.height) == (384, 384)
    assert done.duration == pytest.approx(1.6, abs=0.05)
    clip_path = tmp_path / "clip.mp4"
    clip_path.write_bytes(flow.blobs.get(done.clip_key))
    info = probe(clip_path)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert (info.width, info.height) == (384, 384)
    assert info.duration == pytest.approx(1.6, abs=0.1)

    # Delivery: exactly one claim wins; recording it twice changes nothing.
    assert await flow.begin_delivery(job.id) is True
    assert await flow.begin_delivery(job.id) is False
    with await flow.clip_for_upload(job.id, max_bytes=10 * 1024 * 1024) as clip:
        assert clip.path.is_file() and clip.size_bytes == clip_path.stat().st_size
        assert (clip.width, clip.height) == (384, 384) and clip.thumbnail[:2] == b"\xff\xd8"
    assert not clip.path.exists()
    await flow.finish_delivery(job.id, {"message_id": "77"})
    await flow.finish_delivery(job.id, {"message_id": "78"})
    delivered = await flow.get(job.id)
    assert delivered.state == "delivered" and delivered.delivery == {"message_id": "77"}
    assert await flow.begin_delivery(job.id) is False
    assert job.id not in {j.id for j in flow.store.pending("telegram")}


async def test_text_request_is_spoken_by_tts_before_queueing(render_worker, flow, requester, reply_to, photo_bytes):
    job = await flow.submit(
        requester, reply_to, RenderRequest(photo=photo_bytes, text="Hello there, nice to meet you.")
    )
    assert job.options.text == "Hello there, nice to meet you."
    done = await asyncio.to_thread(wait_for_job, flow.store, job.id, {"done", "failed"})
    assert done.state == "done" and done.duration > 0.5


async def test_clip_for_upload_fits_a_small_budget(render_worker, flow, requester, reply_to, photo_bytes, voice_bytes):
    job = await flow.submit(requester, reply_to, RenderRequest(photo=photo_bytes, audio=voice_bytes))
    done = await asyncio.to_thread(wait_for_job, flow.store, job.id, "done")
    original = len(flow.blobs.get(done.clip_key))
    budget = original // 2
    with await flow.clip_for_upload(job.id, max_bytes=budget) as clip:
        assert clip.size_bytes <= budget
        assert clip.duration == pytest.approx(done.duration, abs=0.15)


# --- bad input is refused before anything is queued ---------------------------------------------
async def test_bad_input_is_refused_before_anything_is_stored(flow, requester, reply_to, voice_bytes, photo_bytes):
    with pytest.raises(NotAnImageError) as refused:
        await flow.submit(requester, reply_to, RenderRequest(photo=b"this is not a picture", audio=voice_bytes))
    assert refused.value.user_message == messages.NOT_AN_IMAGE
    with pytest.raises(InputError):
        await flow.submit(requester, reply_to, RenderRequest(photo=photo_bytes))  # neither audio nor text
    with pytest.raises(InputError):
        await flow.submit(requester, reply_to, RenderRequest(photo=photo_bytes, audio=b"\x00" * 3000))
    assert flow.store.list_jobs("telegram") == [] or all(
        job.requester.user_id != requester.user_id for job in flow.store.list_jobs("telegram")
    )
    assert flow.store.active_count("telegram", requester.user_id) == 0


# --- cancel ---------------------------------------------------------------------------------------
async def test_cancel_while_queued_never_renders(render_worker, celery_app, flow, requester, reply_to):
    # A job record whose task message is still "in the queue": we send it only after cancelling.
    job = flow.store.create(
        requester, reply_to, JobOptions("lite", "fast", 1.0, 1), {"photo": "x" * 68, "audio": "y" * 68}
    )
    assert await flow.queue_position(job.id) is not None
    assert await flow.cancel(job.id, "someone-else") is False  # only the requester may
    assert await flow.cancel(job.id, requester.user_id) is True
    assert await flow.cancel(job.id, requester.user_id) is False  # already ended
    assert await flow.queue_position(job.id) is None

    outcome = await asyncio.to_thread(_send(celery_app, job.id).get, timeout=30)
    assert outcome == "finished"
    after = await flow.get(job.id)
    assert after.state == "cancelled" and after.attempts == 0
    assert after.user_message == messages.CANCELLED
    assert [state for state, _ in flow.store.history(job.id)] == ["cancelled"]


async def test_cancel_while_running_stops_the_render(
    render_worker, celery_app, engine_slowdown, flow, requester, reply_to, photo_bytes, voice_bytes
):
    engine_slowdown(0.2)  # 40 frames: about 8 s if nobody stops it
    job = await flow.submit(requester, reply_to, RenderRequest(photo=photo_bytes, audio=voice_bytes))
    await asyncio.to_thread(
        wait_for, lambda: (j := flow.store.get(job.id)) and j.stage == "rendering" and j.step >= 1, 60
    )
    moderator = await flow.cancel(job.id, "a-moderator", force=True)
    assert moderator is True
    started = time.monotonic()
    outcome = await asyncio.to_thread(celery_app.AsyncResult(job.id).get, timeout=30)
    assert outcome == "cancelled"
    assert time.monotonic() - started < 4.0  # stopped within a step or two, not after 8 s
    after = await flow.get(job.id)
    assert after.state == "cancelled" and after.clip_key is None
    assert flow.store.lease_holder(job.id) is None
    # The cancelled outcome is delivered once, like any other.
    assert await flow.begin_delivery(job.id) is True
    await flow.finish_delivery(job.id, {"message_id": "9"})
    assert (await flow.get(job.id)).delivered


# --- quotas ---------------------------------------------------------------------------------------
async def test_hourly_quota_refuses_with_a_retry_time(
    render_worker, settings, requester, reply_to, photo_bytes, voice_bytes
):
    from avatarbot.service.flow import RequestFlow

    flow = RequestFlow.from_settings(with_overrides(settings, jobs={"max_per_user_per_hour": 2}))
    try:
        for seed in (1, 2):
            await flow.submit(requester, reply_to, RenderRequest(photo=photo_bytes, audio=voice_bytes, seed=seed))
        with pytest.raises(QuotaError) as refused:
            await flow.submit(requester, reply_to, RenderRequest(photo=photo_bytes, audio=voice_bytes, seed=3))
        assert 3500 < refused.value.retry_after_s <= 3600
        assert refused.value.user_message == messages.quota_user_hourly(2, refused.value.retry_after_s)
        assert "Try again in 60 minutes" in refused.value.user_message
        assert len([j for j in flow.store.list_jobs("telegram") if j.requester == requester]) == 2

        # Another user in the same chat is not limited by this user's quota.
        other = Requester("telegram", requester.user_id + "-b", requester.server_id)
        await flow.submit(other, reply_to, RenderRequest(photo=photo_bytes, audio=voice_bytes, seed=4))
    finally:
        await flow.close()


async def test_server_quota_and_chat_overrides(settings, requester, reply_to, photo_bytes, voice_bytes):
    from avatarbot.service.flow import RequestFlow

    flow = RequestFlow.from_settings(settings)  # no worker needed: the jobs only have to exist
    try:
        await flow.chat_config.update("telegram", requester.server_id, max_per_server_per_hour=1)
        await flow.submit(requester, reply_to, RenderRequest(photo=photo_bytes, audio=voice_bytes, seed=1))
        other = Requester("telegram", requester.user_id + "-b", requester.server_id)
        with pytest.raises(QuotaError) as refused:
            await flow.submit(other, reply_to, RenderRequest(photo=photo_bytes, audio=voice_bytes, seed=2))
        assert refused.value.user_message.startswith("This chat has made 1 clips")
        await flow.chat_config.update("telegram", requester.server_id, max_per_server_per_hour=None)
        await flow.submit(other, reply_to, RenderRequest(photo=photo_bytes, audio=voice_bytes, seed=2))
    finally:
        await flow.close()


async def test_concurrent_quota_frees_up_when_a_job_ends(
    render_worker, engine_slowdown, settings, requester, reply_to, photo_bytes, voice_bytes
):
    from avatarbot.service.flow import RequestFlow

    engine_slowdown(0.2)
    flow = RequestFlow.from_settings(with_overrides(settings, jobs={"max_concurrent_per_user": 1}))
    try:
        first = await flow.submit(requester, reply_to, RenderRequest(photo=photo_bytes, audio=voice_bytes, seed=1))
        with pytest.raises(QuotaError) as refused:
            await flow.submit(requester, reply_to, RenderRequest(photo=photo_bytes, audio=voice_bytes, seed=2))
        assert refused.value.user_message == messages.quota_concurrent(1)
        assert await flow.cancel(first.id, requester.user_id)
        second = await flow.submit(requester, reply_to, RenderRequest(photo=photo_bytes, audio=voice_bytes, seed=2))
        assert second.id != first.id
        await flow.cancel(second.id, requester.user_id)
    finally:
        await flow.close()


# --- deduplication --------------------------------------------------------------------------------
async def test_same_request_twice_returns_the_existing_job(
    render_worker, engine_slowdown, flow, requester, reply_to, photo_bytes, voice_bytes
):
    engine_slowdown(0.2)  # the first job must still be running when it is cancelled below
    request = RenderRequest(photo=photo_bytes, audio=voice_bytes, quality="fast")
    first = await flow.submit(requester, reply_to, request)
    again = await flow.submit(requester, reply_to, request)
    assert again.id == first.id and again.duplicate
    assert again.options.seed == first.options.seed

    other_user = Requester("telegram", requester.user_id + "-other", requester.server_id)
    assert (await flow.submit(other_user, reply_to, request)).id != first.id
    other_options = await flow.submit(
        requester, reply_to, RenderRequest(photo=photo_bytes, audio=voice_bytes, quality="standard")
    )
    assert other_options.id != first.id and not other_options.duplicate

    # A cancelled job is not "the existing job": asking again makes a new one.
    assert await flow.cancel(first.id, requester.user_id)
    retry = await flow.submit(requester, reply_to, request)
    assert retry.id != first.id and not retry.duplicate
    for job in (other_options, retry):
        await flow.cancel(job.id, requester.user_id)


# --- at-least-once delivery of task messages ------------------------------------------------------
async def test_same_task_message_twice_renders_once(
    render_worker, celery_app, engine_slowdown, flow, requester, reply_to, photo_bytes, voice_bytes
):
    engine_slowdown(0.03)
    job = await flow.submit(requester, reply_to, RenderRequest(photo=photo_bytes, audio=voice_bytes))
    duplicate = _send(celery_app, job.id, task_id=f"{job.id}-duplicate")  # what Redis does after visibility_timeout
    outcomes = {
        await asyncio.to_thread(celery_app.AsyncResult(job.id).get, timeout=60),
        await asyncio.to_thread(duplicate.get, timeout=60),
    }
    assert outcomes == {"done", "finished"}
    done = await flow.get(job.id)
    assert done.state == "done" and done.attempts == 1
    assert [state for state, _ in flow.store.history(job.id)] == ["running", "encoding", "done"]


async def test_job_of_a_dead_worker_is_rendered_again(
    render_worker, celery_app, flow, requester, reply_to, photo_bytes, voice_bytes
):

    # Submit without a message, then let a "worker" claim it and die (no heartbeat follows).
    job = await flow.submit(requester, reply_to, RenderRequest(photo=photo_bytes, audio=voice_bytes))
    await asyncio.to_thread(celery_app.AsyncResult(job.id).get, timeout=60)  # let the real run finish first
    # Build a fresh job the dead worker holds:
    fresh = flow.store.create(requester, reply_to, job.options, job.inputs)
    assert flow.store.claim(fresh.id, "dead-host:1:1:dead", lease_s=2) == "claimed"
    outcome = _send(
        celery_app, fresh.id, task_id=fresh.id
    )  # the message comes back (reject_on_worker_lost / visibility)
    assert await asyncio.to_thread(outcome.get, timeout=60) == "done"
    done = await flow.get(fresh.id)
    assert done.state == "done" and done.attempts == 2
    assert done.clip_key is not None
    assert flow.store.lease_holder(fresh.id) is None


async def test_a_lost_lease_stops_the_old_attempt(settings, flow, requester, reply_to, photo_bytes, voice_bytes):
    """The worker that lost its lease (stalled past it, another took over) must not write."""
    job = flow.store.create(
        requester, reply_to, JobOptions("lite", "fast", 1.0, 1), {"photo": "p" * 68, "audio": "a" * 68}
    )
    assert flow.store.claim(job.id, "old", lease_s=0.2) == "claimed"
    assert flow.store.claim(job.id, "new", lease_s=5) == "busy"
    await asyncio.sleep(0.3)
    assert flow.store.claim(job.id, "new", lease_s=5) == "claimed"
    assert flow.store.heartbeat(job.id, "old", 5) is False
    assert flow.store.progress(job.id, "old", state="running", stage="rendering", step=1, total=2, eta_s=None) is False
    assert flow.store.finish(job.id, "old", clip_key="c", width=1, height=1, duration=1, notes=[], work_s=1) is False
    assert flow.store.finish(job.id, "new", clip_key="c" * 68, width=1, height=1, duration=1, notes=[], work_s=1)
    assert (await flow.get(job.id)).state == "done"


# --- failures a user can read --------------------------------------------------------------------
class _OutOfMemoryError(RuntimeError):
    pass


_OutOfMemoryError.__name__ = "OutOfMemoryError"  # what torch.cuda raises, without torch


class _MemoryHungryEngine:
    """Runs out of memory above `fits` quality; renders like lite at or below it."""

    name = "memory-hungry"

    def __init__(self, inner, fits: str | None):
        self.inner, self.fits = inner, fits
        self.asked: list[str] = []

    def render(self, photo, audio, options, progress=None, should_cancel=None):
        self.asked.append(options.quality)
        if options.quality != self.fits:
            raise _OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner.render(photo, audio, options, progress=progress, should_cancel=should_cancel)


@pytest.mark.parametrize("fits", ["fast", None])
async def test_out_of_memory_retries_once_at_lower_quality(
    render_worker, base_settings, flow, requester, reply_to, photo_bytes, voice_bytes, fits
):
    from avatarbot.tasks import render_job

    lite = render_job.engine_for("lite", base_settings)
    hungry = _MemoryHungryEngine(lite, fits)
    render_job.install_engine("lite", hungry)
    try:
        job = await flow.submit(
            requester, reply_to, RenderRequest(photo=photo_bytes, audio=voice_bytes, quality="standard")
        )
        ended = await asyncio.to_thread(wait_for_job, flow.store, job.id, {"done", "failed"})
    finally:
        render_job.install_engine("lite", lite)
    assert hungry.asked == ["standard", "fast"]
    if fits == "fast":
        assert ended.state == "done" and (ended.width, ended.height) == (384, 384)
        assert messages.LOWER_QUALITY_NOTE in ended.notes
    else:
        assert ended.state == "failed" and ended.error_code == "out_of_memory"
        assert ended.user_message == messages.OUT_OF_MEMORY


async def test_render_time_limit_fails_the_job_with_a_message(
    settings, flow, requester, reply_to, photo_bytes, voice_bytes, engine_slowdown
):
    """Run the task body directly with a 1 s limit (the session worker has a long one)."""
    from avatarbot.tasks.render_job import WorkerContext, run_render_job

    engine_slowdown(0.2)
    limited = with_overrides(settings, jobs={"render_time_limit_s": 1, "visibility_timeout_s": 10})
    job = flow.store.create(requester, reply_to, JobOptions("lite", "fast", 1.0, 1), {})
    inputs = {"photo": flow.blobs.put(_png_of(photo_bytes), ".png"), "audio": flow.blobs.put(voice_bytes, ".wav")}
    flow.store.redis.hset(keys.job(job.id), "inputs", __import__("json").dumps(inputs))
    outcome = await asyncio.to_thread(run_render_job, job.id, WorkerContext(limited, flow.store, flow.blobs))
    assert outcome == "failed:render_timeout"
    failed = await flow.get(job.id)
    assert failed.user_message == messages.render_timed_out(1)
    # The code and its numbers, so the reason can be said in another language too.
    assert (failed.error_code, failed.error_params) == ("render_timeout", {"limit_s": 1})


async def test_missing_inputs_fail_with_a_message_and_the_failure_is_delivered_once(
    render_worker, celery_app, flow, requester, reply_to
):
    job = flow.store.create(
        requester,
        reply_to,
        JobOptions("lite", "fast", 1.0, 1),
        {"photo": "0" * 64 + ".png", "audio": "1" * 64 + ".wav"},
    )
    assert await asyncio.to_thread(_send(celery_app, job.id).get, timeout=30) == "failed:inputs_expired"
    failed = await flow.get(job.id)
    assert failed.state == "failed" and failed.user_message == messages.INPUTS_EXPIRED
    claims = await asyncio.gather(*(flow.begin_delivery(job.id) for _ in range(5)))
    assert claims.count(True) == 1
    await flow.abandon_delivery(job.id)  # the post failed: someone may try again
    assert await flow.begin_delivery(job.id) is True
    await flow.finish_delivery(job.id, {"message_id": "1"})
    delivered = await flow.get(job.id)
    assert delivered.state == "failed" and delivered.delivered
    with pytest.raises(InputsExpiredError):
        await flow.again(job.id, requester)


# --- watching and again ---------------------------------------------------------------------------
async def test_a_new_watcher_first_yields_every_undelivered_job(settings, requester, reply_to):
    from avatarbot.service.flow import RequestFlow

    platform = "test-" + requester.user_id  # a platform of its own: no other test's jobs
    me = Requester(platform, requester.user_id, None)
    first = RequestFlow.from_settings(settings)
    second = RequestFlow.from_settings(settings)
    try:
        waiting = first.store.create(me, reply_to, JobOptions("lite", "fast", 1.0, 1), {})
        delivered = first.store.create(me, reply_to, JobOptions("lite", "fast", 1.0, 2), {})
        first.store.cancel(delivered.id, messages.CANCELLED)
        first.store.begin_delivery(delivered.id, "t", 10)
        first.store.finish_delivery(delivered.id, {})
        failed = first.store.create(me, reply_to, JobOptions("lite", "fast", 1.0, 3), {})
        first.store.fail(failed.id, None, code="render_failed", user_message=messages.RENDER_FAILED)

        updates = second.updates(platform, poll_s=0.02)
        initial = {(await updates.__anext__()).id for _ in range(2)}
        assert initial == {waiting.id, failed.id}
        first.store.cancel(waiting.id, messages.CANCELLED)
        change = await asyncio.wait_for(updates.__anext__(), 5)
        assert change.id == waiting.id and change.state == "cancelled"
        await updates.aclose()
    finally:
        await first.close()
        await second.close()


async def test_again_reuses_the_inputs_with_a_new_seed(
    render_worker, flow, requester, reply_to, photo_bytes, voice_bytes
):
    job = await flow.submit(requester, reply_to, RenderRequest(photo=photo_bytes, audio=voice_bytes, seed=5))
    other = Requester("telegram", "presser", requester.server_id)
    repeat = await flow.again(job.id, other)
    assert repeat.id != job.id and repeat.inputs == job.inputs
    assert repeat.options.seed != job.options.seed and repeat.options.quality == job.options.quality
    assert repeat.requester == other and repeat.reply_target == job.reply_target
    done = await asyncio.to_thread(wait_for_job, flow.store, repeat.id, "done")
    assert done.clip_key


async def test_status_message_and_chat_settings_round_trip(flow, requester, reply_to):
    job = flow.store.create(requester, reply_to, JobOptions("lite", "fast", 1.0, 1), {})
    await flow.set_status_message(job.id, "555")
    assert (await flow.get(job.id)).status_message_id == "555"
    assert await flow.get("no-such-job") is None

    chat = requester.server_id
    assert (await flow.chat_config.get("discord", chat)).clip_captions is True
    updated = await flow.chat_config.update(
        "discord", chat, clip_captions=False, default_voice="de-male", allowed_channels=(1, 2)
    )
    assert updated.clip_captions is False and updated.allowed_channels == ("1", "2")
    assert (await flow.chat_config.get("discord", chat)).default_voice == "de-male"
    assert (await flow.chat_config.get("telegram", chat)).default_voice is None  # per platform
    await flow.chat_config.update("discord", chat, default_voice=None)
    assert (await flow.chat_config.get("discord", chat)).default_voice is None
    # Only registered keys: a typo is an error, not a silently stored setting.
    with pytest.raises(KeyError):
        await flow.chat_config.update("discord", chat, captions=False)
    # What earlier versions stored under "captions" reads as the clip caption switch.
    flow.store.redis.hset(keys.chat_config("discord", chat), "captions", "false")
    assert (await flow.chat_config.get("discord", chat)).clip_captions is False


def _png_of(jpeg: bytes) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_a_job_that_keeps_killing_its_worker_is_given_up(render_worker, celery_app, flow, requester, reply_to):
    from avatarbot.tasks.render_job import MAX_ATTEMPTS

    job = flow.store.create(requester, reply_to, JobOptions("lite", "fast", 1.0, 1), {})
    for attempt in range(MAX_ATTEMPTS):  # each claim's process "died": its lease just ran out
        assert flow.store.claim(job.id, f"doomed-{attempt}", lease_s=0.05) == "claimed"
        await asyncio.sleep(0.1)
    outcome = await asyncio.to_thread(_send(celery_app, job.id).get, timeout=30)
    assert outcome == "failed:too_many_attempts"
    failed = await flow.get(job.id)
    assert failed.state == "failed" and failed.user_message == messages.RENDER_FAILED
