"""Shared fixtures: a real Redis, a real Celery worker, settings that point at them, test media.

Nothing here is mocked. Use them from any test module:

redis_server (session)
    A real `redis-server` child process on a free 127.0.0.1 port, files in a temp dir, stopped
    (and checked gone) at the end of the session. `.url`, `.port`, `.pid`.
base_settings (session)
    `Settings` pointing at that server: engine "lite", quality "fast", lease 2 s (so lease
    take-over tests run in seconds), render time limit 120 s, quotas generous (20 concurrent,
    1000/hour), dedup window 600 s. Its data_dir is a session temp dir.
settings (function)
    `base_settings` with a fresh `data_dir = tmp_path`. Change anything with
    `with_overrides(settings, jobs={"max_per_user_per_hour": 1}, render={"quality": "standard"})`.
    Jobs are never flushed between tests (the worker's queue bindings live in the same Redis),
    so give each test its own user ids: the `requester` fixture does (a unique user and server).
celery_app (session)
    The real Celery app (`avatarbot.tasks.app.create_app`) for `base_settings`.
render_worker (session)
    A real Celery worker (`celery.contrib.testing.worker.start_worker`, threads pool,
    concurrency 2) consuming the `gpu` queue and running the real render task with the lite
    engine, in this process. Depend on it in any test that needs jobs rendered.
engine_slowdown (function)
    Slows every render step of the in-process worker by `delay_s` (default 0.2 s), so a test can
    act while a job is running (cancel it, watch progress). Restored after the test.
flow (function)
    `RequestFlow.from_settings(settings)`, closed after the test.
requester / reply_to (function)
    A `Requester` (platform "telegram", unique user and server ids) and a `ReplyTarget`.
photo_bytes / voice_bytes (session)
    A JPEG of a real face (scikit-image's astronaut, 256 px) and a 1.6 s voiced WAV (16 kHz).

Helpers (import from conftest): `with_overrides`, `wait_for(predicate, timeout_s)`,
`wait_for_job(store, job_id, states, timeout_s)`, `voiced_wav(seconds)` (WAV bytes).

Tests that start real processes (`avatarbot run`, `avatarbot worker`) are marked `drill`.

Tests written once for both chat surfaces use the fixtures of `tests/chat_sides.py` (`make_side`,
parametrized over Telegram and Discord), registered below.
"""

from __future__ import annotations

import io
import os
import time
import uuid

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from avatarbot.settings import Settings
from avatarbot.tasks.inputs import audio_wav

pytest_plugins = ["tests.chat_sides"]


# --- helpers -------------------------------------------------------------------------------------
def with_overrides(settings: Settings, **sections) -> Settings:
    """A copy of `settings` with some section fields changed: with_overrides(s, jobs={"lease_s": 5})."""
    update = {}
    for section, values in sections.items():
        current = getattr(settings, section)
        update[section] = current.model_copy(update=values) if isinstance(values, dict) else values
    return settings.model_copy(update=update)


def wait_for(predicate, timeout_s: float = 30.0, interval_s: float = 0.05):
    """Poll `predicate` until it returns something truthy; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {predicate}")
        time.sleep(interval_s)


def wait_for_job(store, job_id: str, states, timeout_s: float = 60.0):
    """The job, once its state is one of `states`."""
    states = {states} if isinstance(states, str) else set(states)

    def reached():
        job = store.get(job_id)
        return job if job is not None and job.state in states else None

    return wait_for(reached, timeout_s)


# --- Redis and Celery ----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    import psutil

    from avatarbot.tasks.redis_server import start_redis_server

    server = start_redis_server(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()
    assert not psutil.pid_exists(server.pid) or psutil.Process(server.pid).status() == psutil.STATUS_ZOMBIE


@pytest.fixture(scope="session")
def base_settings(redis_server, tmp_path_factory) -> Settings:
    return Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        redis={"url": redis_server.url},
        render={"engine": "lite", "quality": "fast"},
        tts={"engine": "offline"},
        jobs={
            "lease_s": 2,
            "render_time_limit_s": 120,
            "visibility_timeout_s": 180,
            "max_concurrent_per_user": 20,
            "max_per_user_per_hour": 1000,
            "max_per_server_per_hour": 1000,
            "delivery_claim_s": 30,
        },
    )


@pytest.fixture
def settings(base_settings, tmp_path) -> Settings:
    return base_settings.model_copy(update={"data_dir": tmp_path})


@pytest.fixture(scope="session")
def celery_app(base_settings):
    from avatarbot.tasks.app import create_app

    app = create_app(base_settings)
    yield app
    app.close()


@pytest.fixture(scope="session")
def render_worker(celery_app):
    from celery.contrib.testing.worker import start_worker

    from avatarbot.tasks.app import GPU_QUEUE

    with start_worker(
        celery_app,
        pool="threads",
        concurrency=2,
        queues=[GPU_QUEUE],
        perform_ping_check=False,
        shutdown_timeout=30,
        loglevel="WARNING",
    ) as worker:
        yield worker


class _SlowedEngine:
    """Wraps an engine so that every cancel check (between steps) first sleeps."""

    def __init__(self, inner, delay_s: float):
        self.inner = inner
        self.delay_s = delay_s
        self.name = getattr(inner, "name", "slowed")

    def render(self, photo, audio, options, progress=None, should_cancel=None):
        def slow_check() -> bool:
            time.sleep(self.delay_s)
            return bool(should_cancel and should_cancel())

        return self.inner.render(photo, audio, options, progress=progress, should_cancel=slow_check)


@pytest.fixture
def engine_slowdown(base_settings):
    from avatarbot.tasks import render_job

    def slow_down(delay_s: float = 0.2, name: str = "lite"):
        original = render_job.engine_for(name, base_settings)
        render_job.install_engine(name, _SlowedEngine(original, delay_s))
        restore.append((name, original))

    restore: list = []
    yield slow_down
    for name, original in restore:
        render_job.install_engine(name, original)


@pytest.fixture
async def flow(settings):
    from avatarbot.service.flow import RequestFlow

    flow = RequestFlow.from_settings(settings)
    yield flow
    await flow.close()


@pytest.fixture
def requester():
    from avatarbot.service.flow import Requester

    unique = uuid.uuid4().hex[:10]
    return Requester(platform="telegram", user_id=f"user-{unique}", server_id=f"chat-{unique}", display_name="Tess")


@pytest.fixture
def reply_to():
    from avatarbot.service.flow import ReplyTarget

    return ReplyTarget(chat_id="-100123", message_id="42", thread_id=None, extra={"note": "test"})


# --- media ---------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def photo_bytes() -> bytes:
    from PIL import Image
    from skimage import data

    image = Image.fromarray(data.astronaut()).resize((256, 256), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def voiced_wav(seconds: float = 1.6, sample_rate: int = 16_000, pitch_hz: float = 140.0) -> bytes:
    """A buzz with syllable-like loudness changes: enough 'speech' for the engines and checks."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    buzz = sum(np.sin(2 * np.pi * pitch_hz * k * t) / k for k in range(1, 8))
    syllables = 0.5 * (1 + np.sin(2 * np.pi * 3.0 * t - np.pi / 2))
    samples = 0.3 * buzz / np.abs(buzz).max() * syllables
    return audio_wav(samples, sample_rate)


@pytest.fixture(scope="session")
def voice_bytes() -> bytes:
    return voiced_wav()
