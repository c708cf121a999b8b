"""Hostile and odd input through the real request flow (issue 7): nothing crashes, nothing bad is queued.

Every sample of `tests/hostile_corpus.py` goes through `RequestFlow.submit` against the real Redis
and the real Celery worker (lite engine). Images are paired with a good voice note, audio and text
with the astronaut photo.

- "refuse": an `InputError` / `SpeechError` whose `user_message` reads like a sentence for a
  person (no traceback, paths or library names), and Redis proves nothing was queued: MONITOR
  saw no push to the `gpu` queue while `submit` ran, and no job record, queue entry or blob appeared.
- "clip": accepted, rendered by the worker to `done`, and the clip a bot would upload is a
  valid H.264/AAC MP4 that ffprobe reads and ffmpeg decodes to the end.
- "either": a refusal as above or a finished job; any exception that is not an
  `AvatarbotError` is a crash and fails the test.

Accepted samples are submitted in one test and rendered while the next ones are checked, so
the worker's two threads stay busy; each sample still has its own test.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Self

import pytest
import redis

from avatarbot import errors
from avatarbot.service.flow import RenderRequest, Requester
from avatarbot.tasks.app import GPU_QUEUE
from avatarbot.tasks.jobs import DONE, OUTCOME_STATES, PREFIX
from tests.conftest import wait_for_job
from tests.hostile_corpus import ASTRONAUT, Sample, corpus

# The largest clip a bot would upload (Discord's default limit); our clips are far smaller.
UPLOAD_LIMIT_BYTES = 10 * 1024 * 1024
RENDER_TIMEOUT_S = 120.0
# Words and shapes that only an operator should ever read (a memory address, a bytes repr, ...).
INTERNAL_MARKERS = re.compile(
    r"Traceback|File \"|\.py\b|/tmp|/usr/|Errno|Error|Exception|\bPIL\b|Pillow|ffmpeg|ffprobe|libav|"
    r"pipe:|0x[0-9a-fA-F]{4,}|\\x[0-9a-f]{2}|\bNone\b|b'|\bnan\b|\binf\b"
)


@functools.cache
def samples() -> dict[str, Sample]:
    return {sample.name: sample for sample in corpus()}


def names(*expects: str) -> list[str]:
    return [name for name, sample in samples().items() if sample.expect in expects]


def request_for(sample: Sample, voice: bytes) -> RenderRequest:
    astronaut = ASTRONAUT.read_bytes()
    if sample.kind == "image":
        return RenderRequest(photo=sample.data, audio=voice, quality="fast", seed=1)
    if sample.kind == "audio":
        return RenderRequest(photo=astronaut, audio=sample.data, quality="fast", seed=1)
    return RenderRequest(photo=astronaut, text=sample.text, quality="fast", seed=1)


def new_requester() -> Requester:
    # Platform "cli" (as `animate --queue`): no bot in this test session watches it, so the dozens
    # of jobs here are never picked up for delivery by a Telegram or Discord test that runs later.
    unique = uuid.uuid4().hex[:10]
    return Requester(platform="cli", user_id=f"hostile-{unique}", server_id=f"chat-{unique}")


def assert_readable_refusal(error: errors.AvatarbotError) -> None:
    assert isinstance(error, (errors.InputError, errors.SpeechError)), f"{type(error).__name__}: {error.detail}"
    message = error.user_message
    assert isinstance(message, str) and message.strip(), "empty user_message"
    assert len(message) < 400 and "\n" not in message.strip(), message
    leaked = INTERNAL_MARKERS.findall(message)
    assert not leaked, f"user_message shows internals {leaked}: {message!r}"
    assert message.rstrip()[-1] in ".!?)", f"not a sentence: {message!r}"


# --- watching Redis ------------------------------------------------------------------------------
class RedisWatch:
    """What Redis saw while the block ran: every command (MONITOR, so a task pushed to the `gpu`
    queue and consumed at once by the worker is still seen), and the job records, queue entries
    and blobs before and after."""

    def __init__(self, url: str):
        self.client = redis.Redis.from_url(url, decode_responses=True)
        self.sentinel = f"hostile-watch-end-{uuid.uuid4().hex}"
        self.commands: list[str] = []

    def snapshot(self) -> dict:
        return {
            # Job records only (`avatarbot:job:<id>`), not a job's side keys such as its history.
            "jobs": {key for key in self.client.scan_iter(f"{PREFIX}:job:*", count=1000) if key.count(":") == 2},
            # Input blobs only: a refused request could store nothing else, and a clip (.mp4)
            # appearing meanwhile is the shared worker finishing another test's job.
            "blobs": {key for key in self.client.scan_iter(f"{PREFIX}:blob*", count=1000) if not key.endswith(".mp4")},
            "queued": set(self.client.zrange(f"{PREFIX}:queue", 0, -1)),
        }

    def __enter__(self) -> Self:
        self.before = self.snapshot()
        self._monitor = self.client.monitor()
        self._monitor.__enter__()  # returns once Redis has answered MONITOR: nothing is missed
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()
        return self

    def _listen(self) -> None:
        for entry in self._monitor.listen():
            if self.sentinel in entry["command"]:
                return
            self.commands.append(entry["command"])

    def __exit__(self, *exc) -> None:
        self.client.echo(self.sentinel)
        self._thread.join(10)
        assert not self._thread.is_alive(), "MONITOR never saw the end marker"
        self._monitor.__exit__(None, None, None)
        self.after = self.snapshot()

    def gpu_pushes(self) -> list[str]:
        """Tasks pushed to the `gpu` queue for jobs that did not exist before the block (Celery
        may push an old job's task again while we watch: a redelivery is not a new job)."""
        old_ids = [key.rsplit(":", 1)[-1] for key in self.before["jobs"]]
        pushes = []
        for command in self.commands:
            parts = command.split(" ", 2)
            is_push = parts[0].upper() in ("LPUSH", "RPUSH") and len(parts) > 1 and parts[1].startswith(GPU_QUEUE)
            if is_push and not any(job_id in command for job_id in old_ids):
                pushes.append(command[:200])
        return pushes

    def new(self, what: str) -> set[str]:
        return self.after[what] - self.before[what]


# --- outcomes ------------------------------------------------------------------------------------
def probe_mp4(path: Path) -> dict:
    """ffprobe's view of a clip, after ffmpeg decoded every frame and sample without an error."""
    decoded = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert decoded.returncode == 0 and not decoded.stderr.strip(), decoded.stderr[-2000:]
    probed = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return json.loads(probed.stdout)


async def assert_clip_is_valid(flow, job_id: str) -> None:
    with await flow.clip_for_upload(job_id, UPLOAD_LIMIT_BYTES) as clip:
        info = probe_mp4(clip.path)
        assert clip.size_bytes <= UPLOAD_LIMIT_BYTES
    assert "mp4" in info["format"]["format_name"]
    codecs = {stream["codec_type"]: stream for stream in info["streams"]}
    assert codecs["video"]["codec_name"] == "h264"
    assert codecs["audio"]["codec_name"] == "aac"
    assert int(codecs["video"]["width"]) >= 64 and int(codecs["video"]["height"]) >= 64
    assert float(info["format"]["duration"]) > 0.25


# --- the tests -----------------------------------------------------------------------------------
def test_the_corpus_covers_what_issue_7_names():
    all_samples = samples()
    assert len(all_samples) >= 40
    assert {"image", "audio", "text"} == {sample.kind for sample in all_samples.values()}
    for name in ("png-bomb-20000.png", "truncated.jpg", "jpeg-with-png-magic.png", "polyglot-jpeg-zip.jpg",
                 "huge-exif-rotated.jpg", "cmyk.jpg", "16bit-grey.png", "alpha.png", "panorama-20000x400.jpg",
                 "unknown-codec.xyz", "wav-unknown-codec-tag.wav", "zero-seconds.wav", "ten-minutes.ogg",
                 "one-khz-rate.wav", "eight-channels.wav", "header-only.ogg", "ten-thousand-chars",
                 "zero-width-only", "right-to-left", "emoji-only"):  # fmt: skip
        assert name in all_samples, name


async def test_the_watch_sees_an_accepted_job(redis_server, flow, voice_bytes, render_worker):
    """The refusal tests trust RedisWatch to notice a queued job; prove that it does."""
    good = Sample("good.jpg", "image", "clip", ASTRONAUT.read_bytes())
    with RedisWatch(redis_server.url) as watch:
        job = await flow.submit(new_requester(), _reply_to(), request_for(good, voice_bytes))
    assert watch.gpu_pushes(), watch.commands[:20]
    assert f"{PREFIX}:job:{job.id}" in watch.new("jobs")
    await asyncio.to_thread(wait_for_job, flow.store, job.id, OUTCOME_STATES, RENDER_TIMEOUT_S)


@pytest.mark.parametrize("name", names("refuse"))
async def test_refused_with_a_readable_message_and_nothing_queued(name, redis_server, flow, voice_bytes):
    sample = samples()[name]
    requester = new_requester()
    with RedisWatch(redis_server.url) as watch, pytest.raises(errors.AvatarbotError) as refused:
        await flow.submit(requester, _reply_to(), request_for(sample, voice_bytes))
    assert_readable_refusal(refused.value)
    _assert_nothing_queued(watch, flow, requester)


# Accepted "clip" / "either" samples: submitted by the first test that needs them, all at once,
# so rendering overlaps with the checks; each sample's own test then waits for its job.
_submitted: dict[str, object] = {}  # sample name -> Job, or the AvatarbotError it was refused with


async def _submit_accepted_samples(flow, voice: bytes, redis_url: str, wanted: list[str]) -> None:
    for name in wanted:
        if name in _submitted:
            continue
        requester = new_requester()
        with RedisWatch(redis_url) as watch:
            try:
                _submitted[name] = await flow.submit(requester, _reply_to(), request_for(samples()[name], voice))
            except errors.AvatarbotError as error:  # anything else is a crash: it fails the test
                _submitted[name] = error
        if isinstance(_submitted[name], errors.AvatarbotError):
            _assert_nothing_queued(watch, flow, requester)


@pytest.mark.parametrize("name", names("clip", "either"))
async def test_accepted_samples_render_to_a_valid_clip(name, redis_server, flow, voice_bytes, render_worker, request):
    if name not in _submitted:
        # Only the samples whose tests this session runs (`-k` picks a few).
        wanted = [
            item.callspec.params["name"]
            for item in request.session.items
            if getattr(item, "originalname", None) == "test_accepted_samples_render_to_a_valid_clip"
        ]
        await _submit_accepted_samples(flow, voice_bytes, redis_server.url, wanted or [name])
    sample, outcome = samples()[name], _submitted[name]
    if isinstance(outcome, errors.AvatarbotError):
        assert sample.expect == "either", f"a legal {sample.kind} was refused: {outcome.detail}"
        assert_readable_refusal(outcome)
        return
    job = await asyncio.to_thread(wait_for_job, flow.store, outcome.id, OUTCOME_STATES, RENDER_TIMEOUT_S)
    if sample.expect == "either" and job.state != DONE:
        # Accepted but failed in the worker: fine for an odd input, as long as the user is told why.
        assert job.user_message and job.error_code, job
        return
    assert job.state == DONE, f"{job.state}: {job.error_code} {job.user_message}"
    assert await flow.begin_delivery(job.id)  # as a bot would: claim, upload, record
    await assert_clip_is_valid(flow, job.id)
    await flow.finish_delivery(job.id, {"message_id": "test"})


# --- helpers -------------------------------------------------------------------------------------
def _reply_to():
    from avatarbot.service.flow import ReplyTarget

    return ReplyTarget(chat_id="-100777", message_id="7")


def _assert_nothing_queued(watch: RedisWatch, flow, requester: Requester) -> None:
    assert watch.gpu_pushes() == [], "a refused request reached the gpu queue"
    assert watch.new("jobs") == set(), "a refused request left a job record"
    assert watch.new("queued") == set(), "a refused request is in the job queue"
    assert watch.new("blobs") == set(), "a refused request stored blobs"
    assert flow.store.active_count(requester.platform, requester.user_id) == 0
    assert not [job for job in flow.store.list_jobs(requester.platform) if job.requester.user_id == requester.user_id]
