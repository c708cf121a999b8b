"""The request flow's records and queue: what `Lifecycle` (one per surface) and `animate --queue`
build on. Surfaces don't call this directly; they implement `traits.Surface` and call
`Lifecycle.handle_request` / `Lifecycle.press` (see `lifecycle.py`).

- `submit(requester, reply_to, request)`: checks the photo and audio (or speaks the text), applies
  the quotas, stores normalised inputs and queues the render. Bad input raises `InputError` /
  `SpeechError`, a full quota `QuotaError` (with `retry_after_s`), all carrying `user_message`;
  nothing is queued then. The same request from the same user within `jobs.dedup_window_s`
  returns the existing job with `job.duplicate = True` (unless it failed, was cancelled, or its
  clip expired: then it is rendered again).
- `intake(requester)`: around a request's downloads, refuses at once what the quota can't take.
- `updates(platform)`: every change to the platform's undelivered jobs, starting with all of them.
- `begin_delivery` / `clip_for_upload` / `finish_delivery` / `abandon_delivery`: exactly one
  process posts a job's outcome, recorded in the job.
- `cancel`, `again`; `remember_post` / `job_of_post`: which job a message of ours belongs to.
- `chat_config`: the typed per-chat config (`chat_config.py`).

Every async method runs its blocking work (Redis, decoding, ffmpeg) in a thread: the event
loop never waits on it. If Redis is unreachable, `submit` / `again` raise
`QueueUnavailableError` (with a `user_message`) and `updates` waits and resumes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from avatarbot import messages
from avatarbot.errors import ClipUndeliverableError, EmptyTextError, InputsExpiredError, QueueUnavailableError
from avatarbot.media.images import load_photo
from avatarbot.service.chat_config import ChatConfigStore
from avatarbot.service.clips import ClipFile
from avatarbot.tasks import keys
from avatarbot.tasks.blobs import BlobMissingError, blob_key, blob_store_from_settings
from avatarbot.tasks.dedup import Deduplicator, dedup_key
from avatarbot.tasks.inputs import (
    SAMPLE_RATE,
    audio_wav,
    faces_json,
    phonemes_json,
    photo_png,
)
from avatarbot.tasks.jobs import (
    CANCELLED,
    FAILED,
    OUTCOME_STATES,
    QUEUED,
    Job,
    JobOptions,
    JobStore,
    ReplyTarget,
    Requester,
    new_job_id,
)
from avatarbot.tasks.quotas import QuotaLimits, Quotas
from avatarbot.vocab import QUALITY_TABLE, Quality

__all__ = ["ClipFile", "Job", "RenderRequest", "ReplyTarget", "RequestFlow", "Requester"]

log = logging.getLogger(__name__)

REOFFER_UNDELIVERED_S = 30.0  # updates() offers a finished, undelivered job again this often
REDIS_RETRY_S = 2.0  # updates() waits this long before asking an unreachable Redis again
SEED_RANGE = 2**31


@dataclass(frozen=True)
class RenderRequest:
    photo: bytes
    audio: bytes | None = None  # a recording; wins over `text` when both are given
    text: str | None = None  # spoken by TTS when there is no recording
    voice_name: str | None = None  # TTS voice; default tts.default_voice
    quality: str | None = None  # a `vocab.Quality`; default render.quality
    motion: float | None = None  # 0..2; default render.motion
    seed: int | None = None  # None: a fresh random seed


@dataclass
class _Inputs:
    """Normalised inputs, ready for the blob store: PNG photo, 16 kHz mono 16-bit WAV, faces, and
    for speech made from text its phoneme timings."""

    photo_png: bytes
    audio_wav: bytes
    faces_json: bytes
    notes: list[str]
    phonemes_json: bytes | None = None
    # Speech made from text: its voice and text. The same line spoken twice is not the same
    # samples (espeak-ng's pitch flutter runs on from one call to the next; edge-tts promises
    # nothing), so a repeat is recognised by what was asked for, not by the speech made from it.
    spoken: str | None = None

    def keys(self) -> dict[str, str]:
        keys = {
            "photo": blob_key(self.photo_png, ".png"),
            "audio": blob_key(self.audio_wav, ".wav"),
            "faces": blob_key(self.faces_json, ".json"),
        }
        if self.phonemes_json is not None:
            keys["phonemes"] = blob_key(self.phonemes_json, ".json")
        return keys

    def identity(self) -> dict[str, str]:
        """What makes two requests the same one (the deduplication fingerprint's inputs)."""
        keys = self.keys()
        if self.spoken is None:
            return keys
        return {"photo": keys["photo"], "faces": keys["faces"], "spoken": self.spoken}


# Decoding, checking and re-encoding media get their own threads. asyncio's default pool also runs
# every Redis call (quota checks, job records): sharing it, quick calls waited behind seconds of
# ffmpeg work under load (bench/load.py: acknowledgement p99 2.6 s). One per core: more did not
# decode faster and took the GIL from the event loop (6 threads: ack p99 2.6 s again).
MEDIA_THREADS = max(2, os.cpu_count() or 2)


class RequestFlow:
    def __init__(self, settings, store: JobStore, blobs, quotas: Quotas, dedup: Deduplicator, chat_config):
        self.settings = settings
        self.store = store
        self.blobs = blobs
        self.quotas = quotas
        self.dedup = dedup
        self.chat_config: ChatConfigStore = chat_config
        self._celery = None
        self._delivery_token = secrets.token_hex(8)
        self._media_pool = ThreadPoolExecutor(MEDIA_THREADS, thread_name_prefix="avatarbot-media")
        self._in_intake: Counter = Counter()  # (platform, "user"|"server", id) -> requests being fetched/decoded

    @classmethod
    def from_settings(cls, settings) -> RequestFlow:
        store = JobStore.from_settings(settings)
        return cls(
            settings,
            store,
            blob_store_from_settings(settings),
            Quotas(store.redis),
            Deduplicator(store.redis, window_s=settings.jobs.dedup_window_s),
            ChatConfigStore(store.redis),
        )

    # --- submit -----------------------------------------------------------------------------------
    async def submit(self, requester: Requester, reply_to: ReplyTarget, request: RenderRequest) -> Job:
        quality = request.quality or self.settings.render.quality
        if quality not in QUALITY_TABLE:
            raise ValueError(f"unknown quality {quality!r}; choose one of {', '.join(Quality)}")
        await self.check_quota(requester)
        inputs = await self._normalise(request)
        options = JobOptions(
            engine="",  # the rendering worker's render.engine: the GPU machines decide
            quality=quality,
            motion=float(self.settings.render.motion if request.motion is None else min(2.0, max(0.0, request.motion))),
            seed=request.seed if request.seed is not None else secrets.randbelow(SEED_RANGE),
            voice_name=request.voice_name if request.audio is None and request.text else None,
            text=request.text,
        )
        return await asyncio.to_thread(
            self._queue_unavailable_on_redis_error, self._create_and_enqueue, requester, reply_to, inputs, options,
            request.seed,
        )  # fmt: skip

    async def check_quota(self, requester: Requester, pending_user: int = 0, pending_server: int = 0) -> None:
        """Raise `QuotaError` now if this requester's next job would be refused, reserving nothing.

        `submit` calls it before decoding anything; adapters call it (through `intake`) before
        downloading. Under load most requests are refused: without this each would first cost a
        download, a decode, face detection and TTS (bench/load.py: the bot fell ~40 s behind)."""
        await asyncio.to_thread(self._queue_unavailable_on_redis_error, self._check_quota, requester,
                                pending_user, pending_server)  # fmt: skip

    def _check_quota(self, requester: Requester, pending_user: int, pending_server: int) -> None:
        self.quotas.check(requester.platform, requester.user_id, requester.server_id, self._limits_for(requester),
                          time.time(), pending_user, pending_server)  # fmt: skip

    @asynccontextmanager
    async def intake(self, requester: Requester):
        """Around an adapter's download and `submit`: refuses at once (QuotaError) a request its
        requester's quota can't take, counting their other requests this process is still
        fetching and decoding as if they were jobs already. Without that, ten quick requests
        from one person would all pass the check and each cost a download and a decode before
        `submit` refused eight of them (bench/load.py, Telegram)."""
        keys = [(requester.platform, "user", requester.user_id)]
        if requester.server_id:
            keys.append((requester.platform, "server", requester.server_id))
        pending = [self._in_intake[key] for key in keys]
        for key in keys:  # counted before the check awaits: requests arriving meanwhile see this one
            self._in_intake[key] += 1
        try:
            await self.check_quota(requester, pending[0], pending[1] if len(pending) > 1 else 0)
            yield
        finally:
            for key in keys:
                self._in_intake[key] -= 1
                if not self._in_intake[key]:
                    del self._in_intake[key]

    def _limits_for(self, requester: Requester) -> QuotaLimits:
        if not requester.server_id:
            return QuotaLimits.from_settings(self.settings)
        config = self.chat_config.get_sync(requester.platform, requester.server_id)
        return QuotaLimits.from_settings(self.settings, config.quota_overrides())

    @staticmethod
    def _queue_unavailable_on_redis_error(function, *args):
        """Redis down or unreachable: the user reads "try later", the operator's log says why."""
        try:
            return function(*args)
        except redis.exceptions.ConnectionError as error:
            log.error("Redis unreachable: %s", error)
            raise QueueUnavailableError(messages.QUEUE_UNAVAILABLE, detail=f"redis: {error}") from error

    async def _normalise(self, request: RenderRequest) -> _Inputs:
        """Decode and check everything before any storage or queueing (bad input costs nothing)."""
        from avatarbot.media.audio import load_audio

        limits = self.settings.limits
        photo = await self._media(load_photo, request.photo, limits)
        spoken = None
        if request.audio is not None:
            audio = await self._media(load_audio, request.audio, limits, sample_rate=SAMPLE_RATE)
        else:
            if not (request.text or "").strip():
                raise EmptyTextError(messages.EMPTY_TEXT, detail="no recording and no text")
            from avatarbot.tts import speak_async

            speech = await speak_async(request.text, request.voice_name, self.settings)
            audio = await self._media(speech.decode, limits, sample_rate=SAMPLE_RATE)
            spoken = f"{request.voice_name or ''}\n{request.text}"
        png, wav = await self._media(lambda: (photo_png(photo.rgb), audio_wav(audio.samples, audio.sample_rate)))
        notes = [] if photo.main_face is not None else [messages.NO_FACE_NOTE]
        timings = phonemes_json(audio.phonemes) if audio.phonemes else None
        return _Inputs(png, wav, faces_json(photo), notes, timings, spoken)

    async def _media(self, function, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(
            self._media_pool, functools.partial(function, *args, **kwargs)
        )

    def _create_and_enqueue(
        self, requester: Requester, reply_to: ReplyTarget, inputs: _Inputs, options: JobOptions, asked_seed: int | None
    ) -> Job:
        keys = inputs.keys()
        choices = {"engine": options.engine, "quality": options.quality, "motion": options.motion, "seed": asked_seed}
        fingerprint = dedup_key(requester.platform, requester.user_id, inputs.identity(), choices)
        job_id = new_job_id()
        existing_id = self.dedup.claim(fingerprint, job_id)
        if existing_id is not None:
            existing = self._get(existing_id)
            if existing is not None and existing.state not in (FAILED, CANCELLED) and self._clip_kept(existing):
                log.info("job %s: duplicate request from %s:%s", existing.id, requester.platform, requester.user_id)
                existing.duplicate = True
                return existing
            self.dedup.replace(fingerprint, job_id)

        limits = self._limits_for(requester)
        try:
            self.quotas.reserve(job_id, requester.platform, requester.user_id, requester.server_id, limits, time.time())
        except Exception:
            self.dedup.forget(fingerprint, job_id)
            raise
        try:
            self.blobs.put(inputs.photo_png, ".png")
            self.blobs.put(inputs.audio_wav, ".wav")
            self.blobs.put(inputs.faces_json, ".json")
            if inputs.phonemes_json is not None:
                self.blobs.put(inputs.phonemes_json, ".json")
            job = self.store.create(requester, reply_to, options, keys, job_id=job_id, notes=inputs.notes)
        except Exception:
            self.quotas.release(job_id, requester.platform, requester.user_id, requester.server_id)
            self.dedup.forget(fingerprint, job_id)
            raise
        self._enqueue(job_id)
        job.queue_position = self.store.queue_position(job_id)
        log.info("job %s queued for %s:%s (%s)", job_id, requester.platform, requester.user_id, options)
        return job

    def _clip_kept(self, job: Job) -> bool:
        """A finished job whose clip expired is no answer to a repeat: it is rendered again."""
        return job.clip_key is None or self.blobs.exists(job.clip_key)

    def _enqueue(self, job_id: str) -> None:
        from avatarbot.tasks.app import GPU_QUEUE, RENDER_TASK

        try:
            # The job id doubles as the task id, so Flower finds a job by its id.
            self._celery_app().send_task(RENDER_TASK, args=[job_id], queue=GPU_QUEUE, task_id=job_id)
        except Exception as error:
            log.error("job %s: could not queue the render: %s", job_id, error)
            self.store.fail(job_id, None, code=QueueUnavailableError.code, user_message=messages.QUEUE_UNAVAILABLE)
            raise QueueUnavailableError(messages.QUEUE_UNAVAILABLE, detail=f"send_task: {error}") from error

    def _celery_app(self):
        if self._celery is None:
            from avatarbot.tasks.app import create_app

            self._celery = create_app(self.settings)
        return self._celery

    # --- watch ------------------------------------------------------------------------------------
    async def get(self, job_id: str) -> Job | None:
        return await asyncio.to_thread(self._get, job_id)

    def _get(self, job_id: str) -> Job | None:
        job = self.store.get(job_id)
        if job is not None and job.state == QUEUED:
            job.queue_position = self.store.queue_position(job_id)
        return job

    async def queue_position(self, job_id: str) -> int | None:
        return await asyncio.to_thread(self.store.queue_position, job_id)

    async def set_status_message(self, job_id: str, message_id: str) -> None:
        await asyncio.to_thread(self.store.set_status_message, job_id, str(message_id))

    async def remember_post(self, platform: str, chat_id: str, message_id: str, job_id: str) -> None:
        """This message of ours (status, clip, failure) belongs to this job: a button pressed on
        it acts on this job and no other."""
        name = keys.posted_message(platform, str(chat_id), str(message_id), self.store.prefix)
        await asyncio.to_thread(self.store.redis.set, name, job_id, ex=self.store.result_ttl_s)

    async def job_of_post(self, platform: str, chat_id: str, message_id: str) -> str | None:
        name = keys.posted_message(platform, str(chat_id), str(message_id), self.store.prefix)
        return await asyncio.to_thread(self.store.redis.get, name)

    async def updates(
        self, platform: str, poll_s: float = 0.5, *, reoffer_s: float | None = None
    ) -> AsyncIterator[Job]:
        """Every change to this platform's undelivered jobs, starting with all of them.

        A finished job nobody has delivered is yielded again every `reoffer_s` (its delivery
        was abandoned, or the bot that claimed it died). By default that is REOFFER_UNDELIVERED_S,
        or `jobs.delivery_claim_s` when shorter: a dead bot's claim expires after that long, and
        offering the job later than that only keeps the clip from the user. A Redis outage
        pauses the stream; it resumes, and catches up, when Redis is back."""
        if reoffer_s is None:
            reoffer_s = min(REOFFER_UNDELIVERED_S, float(self.settings.jobs.delivery_claim_s))
        seen: dict[str, tuple[int, int | None]] = {}  # job id -> (version, queue position) last yielded
        offered_at: dict[str, float] = {}  # finished, undelivered job -> when last yielded
        last_counters = None
        while True:
            try:
                counters = await asyncio.to_thread(self.store.change_counters, platform)
                now = time.monotonic()
                overdue = any(now - at >= reoffer_s for at in offered_at.values())
                jobs = None
                if counters != last_counters or overdue:
                    jobs = await asyncio.to_thread(self._pending_with_positions, platform)
                    last_counters = counters
            except redis.exceptions.ConnectionError as error:
                log.warning("watching %s jobs: Redis unreachable (%s); retrying", platform, error)
                await asyncio.sleep(max(poll_s, REDIS_RETRY_S))
                continue
            if jobs is not None:
                current = {job.id for job in jobs}
                for gone in set(seen) - current:
                    seen.pop(gone, None)
                    offered_at.pop(gone, None)
                for job in jobs:
                    mark = (job.version, job.queue_position)
                    reoffer = job.id in offered_at and now - offered_at[job.id] >= reoffer_s
                    if seen.get(job.id) == mark and not reoffer:
                        continue
                    seen[job.id] = mark
                    if job.state in OUTCOME_STATES and not job.delivered:
                        offered_at[job.id] = now
                    yield job
            await asyncio.sleep(poll_s)

    def _pending_with_positions(self, platform: str) -> list[Job]:
        jobs = self.store.pending(platform)
        queued = [job.id for job in jobs if job.state == QUEUED]
        if queued:
            positions = self.store.queue_positions(queued)
            for job in jobs:
                job.queue_position = positions.get(job.id)
        return jobs

    # --- act on a job -----------------------------------------------------------------------------
    async def cancel(self, job_id: str, user_id: str, *, force: bool = False) -> bool:
        """Cancel a job that hasn't ended. Only its requester may, unless `force` (moderators)."""

        def cancel() -> bool:
            job = self.store.get(job_id)
            if job is None or (not force and job.requester.user_id != str(user_id)):
                return False
            return self.store.cancel(job_id, messages.CANCELLED)

        return await asyncio.to_thread(cancel)

    async def again(self, job_id: str, requester: Requester) -> Job:
        """The same inputs and options with a new seed, replying where the original did."""

        def again() -> Job:
            job = self.store.get(job_id)
            if job is None:
                raise InputsExpiredError(messages.INPUTS_EXPIRED, detail=f"job {job_id} expired")
            try:
                png = self.blobs.get(job.inputs["photo"])
                wav = self.blobs.get(job.inputs["audio"])
                faces = (
                    self.blobs.get(job.inputs["faces"])
                    if "faces" in job.inputs
                    else faces_json(load_photo(png, self.settings.limits))
                )
                phonemes = self.blobs.get(job.inputs["phonemes"]) if "phonemes" in job.inputs else None
            except BlobMissingError as error:
                raise InputsExpiredError(
                    messages.INPUTS_EXPIRED, detail=f"job {job_id}: blob {error} expired"
                ) from error
            seed = secrets.randbelow(SEED_RANGE)
            options = JobOptions(**{**job.options.__dict__, "seed": seed})
            notes = [note for note in job.notes if note == messages.NO_FACE_NOTE]
            return self._create_and_enqueue(
                requester, job.reply_target, _Inputs(png, wav, faces, notes, phonemes), options, seed
            )

        return await asyncio.to_thread(self._queue_unavailable_on_redis_error, again)

    # --- deliver ----------------------------------------------------------------------------------
    async def begin_delivery(self, job_id: str) -> bool:
        """Claim the right to post this job's outcome. True for exactly one caller at a time."""
        return await asyncio.to_thread(
            self.store.begin_delivery, job_id, self._delivery_token, self.settings.jobs.delivery_claim_s
        )

    async def clip_for_upload(self, job_id: str, max_bytes: int) -> ClipFile:
        return await self._media(self._clip_for_upload, job_id, max_bytes)

    def _clip_for_upload(self, job_id: str, max_bytes: int) -> ClipFile:
        from avatarbot.media.video import fit_to_size, make_thumbnail, probe

        job = self.store.get(job_id)
        if job is None or job.clip_key is None:
            raise ClipUndeliverableError(messages.CLIP_EXPIRED, detail=f"job {job_id} has no clip")
        try:
            data = self.blobs.get(job.clip_key)
        except BlobMissingError as error:
            raise ClipUndeliverableError(messages.CLIP_EXPIRED, detail=f"clip blob {error} expired") from error
        directory = Path(tempfile.mkdtemp(prefix="avatarbot-clip-"))
        try:
            original = directory / f"avatarbot-{job_id}.mp4"
            original.write_bytes(data)
            path = fit_to_size(original, max_bytes, directory / f"avatarbot-{job_id}-small.mp4")
            thumbnail = make_thumbnail(path, directory / "thumbnail.jpg").read_bytes()
            info = probe(path)
            return ClipFile(
                path=path, width=info.width, height=info.height, duration=info.duration,
                thumbnail=thumbnail, size_bytes=path.stat().st_size, _directory=directory,
            )  # fmt: skip
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise

    async def finish_delivery(self, job_id: str, record: dict) -> None:
        """Record the post (message ids, ...): the job is delivered. Repeating it changes nothing."""
        await asyncio.to_thread(self.store.finish_delivery, job_id, record)

    async def abandon_delivery(self, job_id: str) -> None:
        """Posting failed: release the claim so a later update can try again."""
        await asyncio.to_thread(self.store.abandon_delivery, job_id)

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        self._media_pool.shutdown(wait=True, cancel_futures=True)
        self.store.redis.close()
        blob_redis = getattr(self.blobs, "redis", None)
        if blob_redis is not None:
            blob_redis.close()
        if self._celery is not None:
            self._celery.close()
