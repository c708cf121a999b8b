"""The render task: a job id in; a clip blob and a finished job record out.

Celery delivers a task message at least once, so the task starts by *claiming* the job (a lease
in Redis, renewed by a heartbeat thread). A delivery that finds the job claimed by a live worker
does nothing now and checks back after one lease period: if that worker died meanwhile (its
lease expired), this delivery takes the job over; if the job ended, it stops.

While rendering it reports progress (throttled), asks between steps whether to stop (cancelled
by the user, lease lost, or past the time limit), and turns every failure into a job that says
what went wrong in words a user can read. Out of GPU memory gets one retry at a lower quality.

The engine is loaded on first use and kept for the life of the worker process: loading
HunyuanVideo-Avatar takes minutes and must happen in the pool process that owns the GPU, never
in the prefork parent (DESIGN §5).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from avatarbot import messages
from avatarbot.errors import AvatarbotError, RenderCancelled, RenderTimeoutError
from avatarbot.media.images import load_photo
from avatarbot.observability import render as render_metrics
from avatarbot.tasks.app import RENDER_TASK
from avatarbot.tasks.blobs import BlobMissingError, BlobStore, blob_store_from_settings
from avatarbot.tasks.inputs import read_photo, read_wav
from avatarbot.tasks.jobs import ACTIVE_STATES, ENCODING, RUNNING, Job, JobStore
from avatarbot.vocab import QUALITY_TABLE, Stage

log = logging.getLogger(__name__)

HEARTBEATS_PER_LEASE = 3
PROGRESS_INTERVAL_S = 0.5  # at most two progress writes a second, plus every change of stage
STATE_POLL_INTERVAL_S = 0.25  # how often `should_cancel` reads the job's state from Redis
# The out-of-memory retry: the quality a render steps down to.
LOWER_QUALITY = {
    quality: preset.after_out_of_memory for quality, preset in QUALITY_TABLE.items() if preset.after_out_of_memory
}
# A job whose render process keeps dying (hard time limit, OOM killer, a crash in native code)
# would otherwise be re-delivered forever by task_reject_on_worker_lost.
MAX_ATTEMPTS = 3

_engines: dict[str, object] = {}
_engines_lock = threading.Lock()


def install_engine(name: str, engine) -> None:
    """Use `engine` for jobs that ask for `name`, in this process (benchmarks, tests, plugins)."""
    with _engines_lock:
        _engines[name] = engine


def engine_for(name: str, settings):
    with _engines_lock:
        if name not in _engines:
            from avatarbot.avatar import get_engine

            log.info("loading render engine %r in process %d", name, os.getpid())
            _engines[name] = get_engine(name, settings)
        return _engines[name]


@dataclass
class WorkerContext:
    settings: object
    store: JobStore
    blobs: BlobStore


_contexts: dict[int, WorkerContext] = {}


def context_for(settings) -> WorkerContext:
    """One Redis pool and blob store per process (connections must not cross a fork)."""
    pid = os.getpid()
    if pid not in _contexts:
        _contexts[pid] = WorkerContext(settings, JobStore.from_settings(settings), blob_store_from_settings(settings))
    return _contexts[pid]


def register_render_task(app) -> None:
    settings = app.avatarbot_settings
    lease_s = settings.jobs.lease_s
    # Enough check-backs to outwait the longest live render held by another worker.
    max_retries = settings.jobs.render_time_limit_s // max(1, lease_s) + 10

    @app.task(name=RENDER_TASK, bind=True, max_retries=max_retries)
    def render(self, job_id: str) -> str:
        outcome = run_render_job(job_id, context_for(settings))
        if outcome == "busy":
            raise self.retry(countdown=lease_s)
        return outcome


def run_render_job(job_id: str, ctx: WorkerContext) -> str:
    """Claim and render one job. Returns the outcome: 'done', 'failed:<code>', 'cancelled',
    'lost' (lease taken over), or why nothing ran: 'busy', 'finished', 'missing'."""
    token = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}:{secrets.token_hex(4)}"
    lease_s = ctx.settings.jobs.lease_s
    verdict = ctx.store.claim(job_id, token, lease_s)
    if verdict != "claimed":
        log.info("job %s not rendered here: %s", job_id, verdict)
        return verdict
    job = ctx.store.get(job_id)
    if job is None:
        return "missing"
    if job.attempts > MAX_ATTEMPTS:
        log.error("job %s: its render died %d times; giving up", job_id, job.attempts - 1)
        ctx.store.fail(job_id, token, code="render_failed", user_message=messages.RENDER_FAILED)
        return "failed:too_many_attempts"
    render_metrics.observe_queue_wait(job)
    run = _Run(ctx, job, token)
    heartbeat = threading.Thread(target=run.keep_lease, name=f"lease-{job_id}", daemon=True)
    heartbeat.start()
    try:
        outcome = run.execute()
        render_metrics.observe_outcome(run.engine_name, outcome)
        return outcome
    finally:
        run.finished.set()
        heartbeat.join(timeout=5)
        ctx.store.release(job_id, token)


def _is_out_of_memory(error: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError (and ours), recognised without importing torch."""
    return type(error).__name__ == "OutOfMemoryError" or "out of memory" in str(error).lower()


def _free_gpu_memory() -> None:
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


class _Run:
    """One claimed attempt at one job."""

    def __init__(self, ctx: WorkerContext, job: Job, token: str):
        self.ctx = ctx
        self.settings = ctx.settings
        self.store = ctx.store
        self.job = job
        self.engine_name = job.options.engine or self.settings.render.engine
        self.token = token
        self.finished = threading.Event()
        self.lease_lost = threading.Event()
        self.deadline = time.monotonic() + self.settings.jobs.render_time_limit_s
        self.timed_out = False
        self.state = RUNNING
        self._stage = ""
        self._stage_started = time.monotonic()
        self._last_write = 0.0
        self._last_poll = 0.0
        self._stop = False

    # --- lease ------------------------------------------------------------------------------------
    def keep_lease(self) -> None:
        lease_s = self.settings.jobs.lease_s
        while not self.finished.wait(lease_s / HEARTBEATS_PER_LEASE):
            try:
                if not self.store.heartbeat(self.job.id, self.token, lease_s):
                    log.warning("job %s: lease lost; stopping this attempt", self.job.id)
                    self.lease_lost.set()
                    return
            except Exception:  # a Redis blip: try again next beat, the lease has slack
                log.warning("job %s: heartbeat failed", self.job.id, exc_info=True)

    # --- the engine's callbacks -------------------------------------------------------------------
    def on_progress(self, progress) -> None:
        now = time.monotonic()
        if progress.stage == Stage.ENCODING:
            self.state = ENCODING  # never back to running: the encoder pulls the last frames
        changed = progress.stage != self._stage
        if changed:
            self._stage, self._stage_started = progress.stage, now
        if not changed and progress.step < progress.total and now - self._last_write < PROGRESS_INTERVAL_S:
            return
        eta = None
        if 0 < progress.step < progress.total:
            eta = (now - self._stage_started) / progress.step * (progress.total - progress.step)
        self._last_write = now
        try:
            written = self.store.progress(
                self.job.id, self.token, state=self.state, stage=progress.stage, step=progress.step,
                total=progress.total, eta_s=eta,
            )  # fmt: skip
        except redis.exceptions.ConnectionError:
            # Progress is for show: a Redis restart must not cost the render. Whether this
            # attempt still owns the job is the heartbeat's call (keep_lease).
            log.warning("job %s: progress not recorded, Redis unreachable", self.job.id)
            return
        if not written:
            self._stop = True  # cancelled or taken over: the next should_cancel says stop

    def should_cancel(self) -> bool:
        if self._stop or self.lease_lost.is_set():
            return True
        now = time.monotonic()
        if now > self.deadline:
            self.timed_out = True
            return True
        if now - self._last_poll >= STATE_POLL_INTERVAL_S:
            self._last_poll = now
            try:
                if self.store.state(self.job.id) not in (RUNNING, ENCODING):
                    self._stop = True
            except redis.exceptions.ConnectionError:
                pass  # Redis restarting: ask again at the next poll
        return self._stop

    # --- the attempt ------------------------------------------------------------------------------
    def execute(self) -> str:
        job_id = self.job.id
        try:
            return self._render_and_store()
        except RenderCancelled:
            if self.timed_out:
                return self._fail_timeout()
            state = self.store.state(job_id)
            if self.lease_lost.is_set() or state in ACTIVE_STATES:
                log.warning("job %s: another worker has it now; this attempt stops", job_id)
                return "lost"
            log.info("job %s stopped: %s", job_id, state)
            return "cancelled"
        except RenderTimeoutError:
            return self._fail_timeout()
        except redis.exceptions.ConnectionError as error:
            # Not the render's fault, so not a failure to show the user: this attempt ends, the
            # lease expires, and a worker's orphan watch queues the job again (recovery.py).
            log.warning("job %s: Redis unreachable (%s); the job will be taken over", job_id, error)
            raise
        except BlobMissingError as error:
            log.warning("job %s: input blob %s is gone", job_id, error)
            return self._fail("inputs_expired", messages.INPUTS_EXPIRED)
        except AvatarbotError as error:
            log.warning("job %s failed: %s (%s)", job_id, error.detail, error.code)
            return self._fail(error.code, error.user_message, error.params)
        except Exception as error:
            if type(error).__name__ == "SoftTimeLimitExceeded":  # Celery's time limit (prefork)
                return self._fail_timeout()
            if _is_out_of_memory(error):
                log.warning("job %s: out of memory even at the lower preset", job_id)
                return self._fail("out_of_memory", messages.OUT_OF_MEMORY)
            log.exception("job %s: render crashed", job_id)
            return self._fail("render_failed", messages.RENDER_FAILED)

    def _render_and_store(self) -> str:
        job, blobs = self.job, self.ctx.blobs
        self.on_progress(_progress("preparing", 0, 1))
        png = blobs.get(job.inputs["photo"])
        if "faces" in job.inputs:
            photo = read_photo(png, blobs.get(job.inputs["faces"]))
        else:  # a record written without its faces: detect them again
            photo = load_photo(png, self.settings.limits)
        phonemes = blobs.get(job.inputs["phonemes"]) if "phonemes" in job.inputs else None  # text: TTS timings
        audio = read_wav(blobs.get(job.inputs["audio"]), phonemes)
        notes = list(job.notes)
        quality = job.options.quality
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="avatarbot-render-") as tmp:
            out = Path(tmp) / "clip.mp4"
            try:
                clip = self._render(photo, audio, quality, out)
            except Exception as error:
                if not _is_out_of_memory(error) or quality not in LOWER_QUALITY:
                    raise
                quality = LOWER_QUALITY[quality]
                log.warning("job %s: out of memory; retrying at %s", job.id, quality)
                render_metrics.observe_out_of_memory_retry(self.engine_name, job.options.quality)
                notes.append(messages.LOWER_QUALITY_NOTE)
                _free_gpu_memory()
                clip = self._render(photo, audio, quality, out)
            work_s = time.monotonic() - started
            clip_key = blobs.put(out.read_bytes(), ".mp4")
        for note in clip.notes:
            if note not in notes:
                notes.append(note)
        done = self.store.finish(
            job.id, self.token, clip_key=clip_key, width=clip.width, height=clip.height,
            duration=round(clip.frame_count / _fps(), 3), notes=notes, work_s=round(work_s, 3),
        )  # fmt: skip
        if not done:
            log.info("job %s ended elsewhere while encoding (%s)", job.id, self.store.state(job.id))
            return "cancelled" if not self.lease_lost.is_set() else "lost"
        render_metrics.observe_render(self.engine_name, quality, work_s)
        log.info("job %s done: %dx%d in %.1f s", job.id, clip.width, clip.height, work_s)
        return "done"

    def _render(self, photo, audio, quality: str, out: Path):
        from avatarbot.avatar.engine import RenderOptions
        from avatarbot.render import render_to_mp4

        options = RenderOptions(quality=quality, motion=self.job.options.motion, seed=self.job.options.seed)
        engine = engine_for(self.engine_name, self.settings)
        watch = render_metrics.RenderWatch(self.engine_name, quality)

        def on_progress(progress) -> None:
            watch.on_progress(progress)
            self.on_progress(progress)

        clip = render_to_mp4(
            engine, photo, audio, options, out, crf=self.settings.render.crf[quality],
            progress=on_progress, should_cancel=self.should_cancel,
        )  # fmt: skip
        watch.ended()
        return clip

    def _fail(self, code: str, user_message: str, params: dict | None = None) -> str:
        self.store.fail(self.job.id, self.token, code=code, user_message=user_message, params=params)
        return f"failed:{code}"

    def _fail_timeout(self) -> str:
        limit = self.settings.jobs.render_time_limit_s
        log.warning("job %s: over the render time limit (%d s)", self.job.id, limit)
        return self._fail(RenderTimeoutError.code, messages.render_timed_out(limit), {"limit_s": limit})


def _progress(stage: str, step: int, total: int):
    from avatarbot.avatar.engine import Progress

    return Progress(stage, step, total)


def _fps() -> int:
    from avatarbot.avatar.engine import FPS

    return FPS
