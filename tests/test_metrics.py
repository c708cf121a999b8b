"""Health, readiness and metrics: over real HTTP, from a real worker process, with a real Redis.

The first test is the operator's view: `avatarbot worker` (prefork pool, metrics added up across
its processes) serves the endpoints; a clip rendered through the queue moves the metrics; the
worker turns unready while Redis is down and ready again when it is back. The others look at
single parts in this process: the render task's counters (out-of-memory retry, outcomes), jobs
by state, readiness reasons, and diffusion-step timing from the real HunyuanVideo-Avatar engine.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import redis
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from avatarbot.tasks.redis_server import die_with_parent, free_port, start_redis_server
from tests.conftest import voiced_wav, wait_for, with_overrides

REPO = Path(__file__).resolve().parents[1]


# --- helpers -------------------------------------------------------------------------------------
def fetch(url: str, timeout_s: float = 5.0) -> tuple[int, str]:
    """(status, body) of a GET; an HTTP error status is an answer too."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a /metrics page: (name, labels) -> value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(page: dict, name: str, **labels: str) -> float:
    return page.get((name, frozenset(labels.items())), 0.0)


def local_value(name: str, **labels: str) -> float:
    """A sample of this process's default registry (the in-process worker's metrics)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- the worker, as an operator sees it ----------------------------------------------------------
@pytest.mark.drill
@pytest.mark.timeout(240)
def test_worker_endpoints_follow_a_job_and_redis(tmp_path, photo_bytes):
    server = start_redis_server(tmp_path / "redis", appendonly=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVATARBOT_")}
    env.update(
        AVATARBOT_DATA_DIR=str(tmp_path / "data"),
        AVATARBOT_REDIS__URL=server.url,
        AVATARBOT_RENDER__ENGINE="lite",
        AVATARBOT_RENDER__QUALITY="fast",
        AVATARBOT_TTS__ENGINE="offline",
        AVATARBOT_JOBS__LEASE_S="5",
        HF_HUB_OFFLINE="1",
        PYTHONUNBUFFERED="1",
    )
    log_path = tmp_path / "worker.log"
    with open(log_path, "ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "avatarbot", "worker"],
            env={**env, "AVATARBOT_METRICS__PORT": str(port)},
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=lambda: die_with_parent(signal.SIGKILL),  # noqa: PLW1509 - a killed pytest leaves no worker
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(base + "/readyz") == 200, timeout_s=60, interval_s=0.2)
        assert fetch(base + "/healthz") == (200, "ok\n")
        status, body = fetch(base + "/readyz")
        assert status == 200 and body == "ready: redis, engine, queue\n"
        assert fetch(base + "/nowhere")[0] == 404
        before = samples(fetch(base + "/metrics")[1])
        assert value(before, "avatarbot_redis_up") == 1

        # One clip through the queue, as `avatarbot animate --queue` sends it.
        voice = tmp_path / "voice.wav"
        voice.write_bytes(voiced_wav(1.2))
        photo = tmp_path / "photo.jpg"
        photo.write_bytes(photo_bytes)
        out = tmp_path / "clip.mp4"
        submitted = subprocess.run(
            [sys.executable, "-m", "avatarbot", "animate", "--queue", "--photo", str(photo), "--voice", str(voice),
             "-o", str(out)],
            env=env, cwd=REPO, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert submitted.returncode == 0, submitted.stderr + _tail(log_path)
        assert out.stat().st_size > 0

        after = samples(fetch(base + "/metrics")[1])
        rendered = {"engine": "lite", "quality": "fast"}
        assert value(after, "avatarbot_render_seconds_count", **rendered) == (
            value(before, "avatarbot_render_seconds_count", **rendered) + 1
        )
        assert value(after, "avatarbot_render_seconds_sum", **rendered) > 0
        assert (
            value(after, "avatarbot_queue_wait_seconds_count")
            == value(before, "avatarbot_queue_wait_seconds_count") + 1
        )
        done = {"engine": "lite", "outcome": "done", "code": ""}
        assert value(after, "avatarbot_renders_total", **done) == value(before, "avatarbot_renders_total", **done) + 1
        assert ("avatarbot_jobs", frozenset({("state", "queued")})) in after  # every state, counted from Redis

        # Redis goes away: alive, not ready, and the scrape still answers (saying Redis is down).
        redis_port = server.port
        server.stop()
        wait_for(lambda: _answers(base + "/readyz") == 503, timeout_s=30, interval_s=0.2)
        status, body = fetch(base + "/readyz")
        assert status == 503 and "redis: unreachable" in body
        assert fetch(base + "/healthz")[0] == 200
        assert value(samples(fetch(base + "/metrics")[1]), "avatarbot_redis_up") == 0

        server = start_redis_server(tmp_path / "redis", appendonly=True, port=redis_port)
        wait_for(lambda: _answers(base + "/readyz") == 200, timeout_s=30, interval_s=0.2)
        assert worker.poll() is None, _tail(log_path)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
        server.stop()
    # The worker removes the directory its pool processes wrote their metrics to.
    logged = re.search(r"pool metrics in (\S+)", log_path.read_text(errors="replace"))
    assert logged and not Path(logged.group(1)).exists()


def _answers(url: str) -> int | None:
    try:
        return fetch(url, timeout_s=3)[0]
    except OSError:
        return None  # not listening yet


def _tail(path: Path, lines: int = 40) -> str:
    return "\n--- worker log ---\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --- the render task's counters, in this process -------------------------------------------------
class _OutOfMemoryError(RuntimeError):
    pass


_OutOfMemoryError.__name__ = "OutOfMemoryError"  # what torch.cuda raises, recognised without torch


class _FitsOnlyFast:
    """Runs out of memory above quality "fast", like a GPU too small for the preset asked for."""

    name = "lite"

    def __init__(self, inner):
        self.inner = inner

    def render(self, photo, audio, options, progress=None, should_cancel=None):
        if options.quality != "fast":
            raise _OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner.render(photo, audio, options, progress=progress, should_cancel=should_cancel)


def _queued_job(settings, photo_bytes, quality: str):
    """A job record with stored inputs, as the flow leaves it, without sending a task."""
    from avatarbot.media.images import load_photo
    from avatarbot.tasks.blobs import blob_store_from_settings
    from avatarbot.tasks.inputs import faces_json, photo_png
    from avatarbot.tasks.jobs import JobOptions, JobStore, ReplyTarget, Requester
    from avatarbot.tasks.render_job import WorkerContext

    store, blobs = JobStore.from_settings(settings), blob_store_from_settings(settings)
    photo = load_photo(photo_bytes, settings.limits)
    inputs = {
        "photo": blobs.put(photo_png(photo.rgb), ".png"),
        "faces": blobs.put(faces_json(photo), ".json"),
        "audio": blobs.put(voiced_wav(0.8), ".wav"),
    }
    requester = Requester(platform="metrics-test", user_id=uuid.uuid4().hex)
    job = store.create(requester, ReplyTarget(chat_id="c"), JobOptions("", quality, 1.0, 1), inputs)
    return job, WorkerContext(settings, store, blobs)


def test_render_task_counts_out_of_memory_retries_outcomes_and_render_time(settings, photo_bytes):
    from avatarbot.tasks import render_job

    lite = render_job.engine_for("lite", settings)
    render_job.install_engine("lite", _FitsOnlyFast(lite))
    retried = {"engine": "lite", "quality": "standard"}
    rendered = {"engine": "lite", "quality": "fast"}
    done = {"engine": "lite", "outcome": "done", "code": ""}
    failed = {"engine": "lite", "outcome": "failed", "code": "out_of_memory"}
    names = [
        ("avatarbot_out_of_memory_retries_total", retried),
        ("avatarbot_render_seconds_count", rendered),
        ("avatarbot_renders_total", done),
        ("avatarbot_renders_total", failed),
        ("avatarbot_queue_wait_seconds_count", {}),
    ]
    before = [local_value(name, **labels) for name, labels in names]
    try:
        job, ctx = _queued_job(settings, photo_bytes, "standard")
        assert render_job.run_render_job(job.id, ctx) == "done"
        job, ctx = _queued_job(settings, photo_bytes, "fast")  # nothing lower to retry at
        render_job.install_engine("lite", _FitsOnlyFast(_Broken()))
        assert render_job.run_render_job(job.id, ctx) == "failed:out_of_memory"
    finally:
        render_job.install_engine("lite", lite)
    after = [local_value(name, **labels) for name, labels in names]
    # one retry (standard -> fast), one clip at fast, one done, one failed, two first claims
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1, 1, 2]


class _Broken:
    def render(self, *args, **kwargs):
        raise _OutOfMemoryError("CUDA out of memory")


# --- jobs by state -------------------------------------------------------------------------------
def test_jobs_by_state_counts_undelivered_jobs_from_redis(redis_server):
    from avatarbot.observability.jobs import JobsCollector, jobs_by_state
    from avatarbot.tasks.jobs import JobOptions, JobStore, ReplyTarget, Requester

    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    store = JobStore(client, result_ttl_s=600, prefix=f"metrics-{uuid.uuid4().hex[:8]}")  # this test's own keys
    options = JobOptions("", "fast", 1.0, 0)
    jobs = [
        store.create(Requester(platform, "u"), ReplyTarget("c"), options, {})
        for platform in ("telegram", "discord", "discord")
    ]
    assert store.claim(jobs[0].id, "w", lease_s=30) == "claimed"
    assert store.cancel(jobs[1].id, "stopped")
    counts = jobs_by_state(store)
    assert (counts["queued"], counts["running"], counts["cancelled"], counts["done"]) == (1, 1, 1, 0)
    assert store.begin_delivery(jobs[1].id, "bot", 30) and store.finish_delivery(jobs[1].id, {"ok": True})
    assert jobs_by_state(store)["cancelled"] == 0  # delivered: no longer the queue's business

    families = {family.name: family for family in JobsCollector(lambda: store).collect()}
    assert families["avatarbot_redis_up"].samples[0].value == 1
    by_state = {sample.labels["state"]: sample.value for sample in families["avatarbot_jobs"].samples}
    assert by_state["queued"] == 1 and by_state["running"] == 1 and set(by_state) >= {"encoding", "failed"}
    client.close()


# --- readiness reasons ---------------------------------------------------------------------------
def test_readyz_says_what_is_missing_and_never_the_redis_password(settings):
    from avatarbot.observability.endpoints import start_worker_endpoints

    closed = free_port()  # nothing listens here
    broken = with_overrides(
        settings,
        redis={"url": f"redis://:pa55word-never-shown@127.0.0.1:{closed}/0"},
        render={"engine": "hunyuan"},
        hunyuan={"weights_dir": None},
        metrics={"port": free_port()},
    )
    endpoints = start_worker_endpoints(broken)
    try:
        status, body = fetch(f"http://127.0.0.1:{endpoints.port}/readyz")
        assert status == 503
        assert "redis: unreachable" in body
        assert "hunyuan.weights_dir is not set" in body or "torch is not installed" in body
        assert "pa55word" not in body
        metrics_status, page = fetch(f"http://127.0.0.1:{endpoints.port}/metrics")
        assert metrics_status == 200 and "pa55word" not in page
        assert value(samples(page), "avatarbot_redis_up") == 0
    finally:
        endpoints.stop()


def test_metrics_are_off_unless_a_port_is_set_and_bind_to_loopback(settings):
    from avatarbot.observability.endpoints import start_worker_endpoints

    assert settings.metrics.port is None and start_worker_endpoints(settings) is None
    endpoints = start_worker_endpoints(with_overrides(settings, metrics={"port": free_port()}))
    try:
        assert endpoints.host == "127.0.0.1"
    finally:
        endpoints.stop()


def test_a_port_in_use_is_a_clear_error(settings):
    from avatarbot.observability.endpoints import start_worker_endpoints

    taken = with_overrides(settings, metrics={"port": free_port()})
    first = start_worker_endpoints(taken)
    try:
        with pytest.raises(ValueError, match=f"cannot serve metrics on 127.0.0.1:{taken.metrics.port}"):
            start_worker_endpoints(taken)
    finally:
        first.stop()


# --- HunyuanVideo-Avatar's steps, through the engine's progress callback -------------------------
@pytest.mark.gpu
def test_diffusion_steps_are_timed_from_the_engines_progress():
    pytest.importorskip("torch")
    from avatarbot.avatar.engine import RenderOptions
    from avatarbot.avatar.hunyuan.engine import HunyuanEngine
    from avatarbot.observability.render import RenderWatch
    from tests.test_hunyuan_pipeline import TINY_SIZES, _photo, _speech, tiny_pipeline

    steps = 4
    engine = HunyuanEngine(pipeline=tiny_pipeline(), num_inference_steps=steps, quality_short_side=TINY_SIZES)
    before = local_value("avatarbot_diffusion_step_seconds_count", quality="fast")
    watch = RenderWatch("hunyuan", "fast")
    engine.render(_photo(), _speech(0.5), RenderOptions(quality="fast"), progress=watch.on_progress)
    watch.ended()
    # the first report's gap holds the encoders' time too: steps 2..4 are timed
    assert local_value("avatarbot_diffusion_step_seconds_count", quality="fast") == before + steps - 1
    assert local_value("avatarbot_diffusion_step_seconds_sum", quality="fast") > 0


@pytest.mark.drill
@pytest.mark.timeout(180)
def test_avatarbot_run_serves_its_workers_endpoints_on_the_metrics_port(tmp_path):
    """One machine, embedded Redis: the worker of `avatarbot run` takes `[metrics] port` itself."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVATARBOT_")}
    env.update(AVATARBOT_DATA_DIR=str(tmp_path), AVATARBOT_METRICS__PORT=str(port), HF_HUB_OFFLINE="1")
    with open(tmp_path / "run.log", "wb") as log:
        run = subprocess.Popen(
            [sys.executable, "-m", "avatarbot", "run"], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=lambda: die_with_parent(signal.SIGKILL),  # noqa: PLW1509
        )  # fmt: skip
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/readyz") == 200, timeout_s=90, interval_s=0.2)
        page = samples(fetch(f"http://127.0.0.1:{port}/metrics")[1])
        assert value(page, "avatarbot_redis_up") == 1  # the embedded Redis, found by the worker
    finally:
        run.send_signal(signal.SIGTERM)
        assert run.wait(60) == 0, _tail(tmp_path / "run.log")


def test_avatarbot_run_gives_each_bot_its_own_port_after_the_workers(settings):
    from avatarbot.runner import _with_metrics_port

    assert _with_metrics_port(settings, "telegram").metrics.port is None  # off stays off
    on = with_overrides(settings, metrics={"port": 9300})
    ports = {name: _with_metrics_port(on, name).metrics.port for name in ("worker", "telegram", "discord")}
    assert ports == {"worker": 9300, "telegram": 9301, "discord": 9302}
