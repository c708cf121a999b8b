"""Job records in Redis: the one place that knows where a request stands.

A job is a Redis hash (`avatarbot:job:<id>`). Every change of state is a small Lua script, so
it is atomic against every other change: a user cancelling while a worker finishes, two
workers handed the same task message, two bot processes racing to post the same clip.

States: queued -> running -> encoding -> done -> delivered, or failed / cancelled. A failed or
cancelled job is delivered too (its message is posted once), which sets `delivered_at` but
keeps the state, so the outcome stays readable.

Two leases make the at-least-once world of Celery safe:
- the *render lease* (`lease:<id>`, renewed by a heartbeat): a second delivery of a live job
  finds it held and does nothing; when a worker dies its lease expires and the next delivery
  of the task message takes the job over;
- the *delivery claim* (`delivering:<id>`): exactly one bot posts an outcome; if it crashes
  mid-upload the claim expires and the job is offered again.

Watchers poll cheaply: every change bumps the job's `version` and a per-platform change
counter, so a bot reads one key per poll until something of its own moved.

Redis Cluster is not supported: the scripts derive key names from the job.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from avatarbot.tasks import keys
from avatarbot.vocab import ACTIVE_STATES, OUTCOME_STATES, JobState

PREFIX = keys.PREFIX

# The states (their one owner is `avatarbot.vocab.JobState`), under the short names the
# scripts and the worker use.
QUEUED = JobState.QUEUED
RUNNING = JobState.RUNNING
ENCODING = JobState.ENCODING
DONE = JobState.DONE
DELIVERED = JobState.DELIVERED
FAILED = JobState.FAILED
CANCELLED = JobState.CANCELLED


@dataclass(frozen=True)
class Requester:
    platform: str  # a `vocab.Platform`
    user_id: str
    server_id: str | None = None  # guild id / group chat id, for per-server quotas
    display_name: str = ""
    # The person's language as the platform tells it (Discord's interaction locale or the server's
    # preferred locale, Telegram's language_code); once a job is made, the language it answers in
    # (the chat's override applied, `messages.resolve`d). None: English.
    language: str | None = None


@dataclass(frozen=True)
class ReplyTarget:
    chat_id: str  # Telegram chat, Discord channel or thread
    message_id: str | None = None  # the message the clip replies to
    thread_id: str | None = None  # Telegram forum topic
    extra: dict = field(default_factory=dict, hash=False)  # adapter-specific, JSON-serialisable


@dataclass(frozen=True)
class JobOptions:
    engine: str  # "" for the worker's own render.engine (the usual case)
    quality: str
    motion: float
    seed: int
    voice_name: str | None = None
    text: str | None = None  # the line spoken by TTS, if any (for captions)


@dataclass
class Job:
    """A read-only snapshot of a job record. Re-read it (`JobStore.get`) to see changes."""

    id: str
    requester: Requester
    reply_target: ReplyTarget
    options: JobOptions
    inputs: dict[str, str]  # "photo" / "audio" / "faces" / "phonemes" (speech from text) -> blob key
    state: str
    stage: str = ""
    step: int = 0
    total: int = 0
    eta_s: float | None = None
    error_code: str | None = None
    user_message: str | None = None  # the failure as said in English
    error_params: dict = field(default_factory=dict)  # the failure's numbers, to say it in any language
    status_message_id: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    delivered_at: float | None = None
    delivery: dict | None = None
    notes: list[str] = field(default_factory=list)
    clip_key: str | None = None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    attempts: int = 0
    work_s: float | None = None  # render + encode time of the successful attempt
    version: int = 0
    queue_position: int | None = None  # filled by the flow for queued jobs
    duplicate: bool = False  # True when submit returned an existing job (dedup)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def finished(self) -> bool:
        """The outcome is known (done, failed or cancelled), delivered or not."""
        return self.state in OUTCOME_STATES or self.state == DELIVERED

    @property
    def delivered(self) -> bool:
        return self.delivered_at is not None


_JSON_FIELDS = ("requester", "reply_target", "options", "inputs", "delivery", "notes", "error_params")
_FLOAT_FIELDS = (
    "eta_s", "created_at", "updated_at", "started_at", "finished_at", "delivered_at",
    "duration", "work_s",
)  # fmt: skip
_INT_FIELDS = ("step", "total", "width", "height", "attempts", "version")


def _decode_job(raw: dict[str, str]) -> Job:
    values: dict[str, Any] = {}
    for name in Job.__dataclass_fields__:
        if name not in raw or raw[name] == "":
            continue
        text = raw[name]
        if name in _JSON_FIELDS:
            values[name] = json.loads(text)
        elif name in _FLOAT_FIELDS:
            values[name] = float(text)
        elif name in _INT_FIELDS:
            values[name] = int(text)
        elif name in ("queue_position", "duplicate"):
            continue
        else:
            values[name] = text
    values["requester"] = Requester(**values["requester"])
    values["reply_target"] = ReplyTarget(**values["reply_target"])
    values["options"] = JobOptions(**values["options"])
    values.setdefault("notes", [])
    return Job(**values)


def _encode(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def new_job_id() -> str:
    return secrets.token_hex(8)


# --- Lua -----------------------------------------------------------------------------------------
# Every script gets the key prefix as ARGV[1] and the job id as ARGV[2]; `touch` records a change.
_PRELUDE = """
local prefix, id = ARGV[1], ARGV[2]
local job = prefix .. ':job:' .. id
local function touch(now)
  redis.call('HINCRBY', job, 'version', 1)
  redis.call('HSET', job, 'updated_at', now)
  local platform = redis.call('HGET', job, 'platform')
  redis.call('INCR', prefix .. ':changes:' .. (platform or ''))
end
local function leave_active()
  local platform = redis.call('HGET', job, 'platform')
  local user = redis.call('HGET', job, 'user_id')
  redis.call('SREM', prefix .. ':active:' .. platform .. ':' .. user, id)
  if redis.call('ZREM', prefix .. ':queue', id) == 1 then redis.call('INCR', prefix .. ':queue_changes') end
end
local function is_active(state) return state == 'queued' or state == 'running' or state == 'encoding' end
local function enter(state, now)
  -- Each change of state is also appended to a short history (for logs, tests, support).
  if redis.call('HGET', job, 'state') == state then return end
  redis.call('HSET', job, 'state', state)
  local history = job .. ':history'
  redis.call('RPUSH', history, state .. ' ' .. now)
  redis.call('EXPIRE', history, redis.call('TTL', job) > 0 and redis.call('TTL', job) or 604800)
end
"""

# ARGV: prefix, id, token, lease_ms, now
_CLAIM = (
    _PRELUDE
    + """
local state = redis.call('HGET', job, 'state')
if not state then return 'missing' end
if not is_active(state) then return 'finished' end
local lease = prefix .. ':lease:' .. id
local holder = redis.call('GET', lease)
if holder and holder ~= ARGV[3] then return 'busy' end
redis.call('SET', lease, ARGV[3], 'PX', ARGV[4])
if redis.call('ZREM', prefix .. ':queue', id) == 1 then redis.call('INCR', prefix .. ':queue_changes') end
enter('running', ARGV[5])
redis.call('HSET', job, 'stage', 'preparing', 'step', 0, 'total', 0, 'eta_s', '', 'worker', ARGV[3])
redis.call('HSETNX', job, 'started_at', ARGV[5])
redis.call('HINCRBY', job, 'attempts', 1)
touch(ARGV[5])
return 'claimed'
"""
)

# ARGV: prefix, id, token, lease_ms
_HEARTBEAT = (
    _PRELUDE
    + """
local lease = prefix .. ':lease:' .. id
if redis.call('GET', lease) ~= ARGV[3] then return 0 end
redis.call('PEXPIRE', lease, ARGV[4])
return 1
"""
)

# ARGV: prefix, id, token
_RELEASE = (
    _PRELUDE
    + """
local lease = prefix .. ':lease:' .. id
if redis.call('GET', lease) ~= ARGV[3] then return 0 end
return redis.call('DEL', lease)
"""
)

# ARGV: prefix, id, now
_REQUEUE_ORPHAN = (
    _PRELUDE
    + """
local state = redis.call('HGET', job, 'state')
if state ~= 'running' and state ~= 'encoding' then return 0 end
if redis.call('EXISTS', prefix .. ':lease:' .. id) == 1 then return 0 end
enter('queued', ARGV[3])
redis.call('HSET', job, 'stage', 'queued', 'step', 0, 'total', 0, 'eta_s', '')
-- Back to its original place in line: it was already someone's turn.
redis.call('ZADD', prefix .. ':queue', redis.call('HGET', job, 'created_at'), id)
redis.call('INCR', prefix .. ':queue_changes')
touch(ARGV[3])
return 1
"""
)

# ARGV: prefix, id, token, now, state, stage, step, total, eta_s
_PROGRESS = (
    _PRELUDE
    + """
if redis.call('GET', prefix .. ':lease:' .. id) ~= ARGV[3] then return 0 end
if not is_active(redis.call('HGET', job, 'state')) then return 0 end
enter(ARGV[5], ARGV[4])
redis.call('HSET', job, 'stage', ARGV[6], 'step', ARGV[7], 'total', ARGV[8], 'eta_s', ARGV[9])
touch(ARGV[4])
return 1
"""
)

# ARGV: prefix, id, token ('' for no lease check), now, outcome state, ttl_s, field, value, ...
_FINISH = (
    _PRELUDE
    + """
local lease = prefix .. ':lease:' .. id
local holder = redis.call('GET', lease)
if ARGV[3] ~= '' and holder and holder ~= ARGV[3] then return 0 end
if not is_active(redis.call('HGET', job, 'state')) then return 0 end
redis.call('EXPIRE', job, ARGV[6])
enter(ARGV[5], ARGV[4])
redis.call('HSET', job, 'stage', ARGV[5], 'finished_at', ARGV[4], 'eta_s', '')
for i = 7, #ARGV, 2 do redis.call('HSET', job, ARGV[i], ARGV[i + 1]) end
if holder == ARGV[3] then redis.call('DEL', lease) end
leave_active()
touch(ARGV[4])
return 1
"""
)

# ARGV: prefix, id, now, user message, ttl_s
_CANCEL = (
    _PRELUDE
    + """
if not is_active(redis.call('HGET', job, 'state')) then return 0 end
redis.call('EXPIRE', job, ARGV[5])
enter('cancelled', ARGV[3])
redis.call('HSET', job, 'stage', 'cancelled', 'error_code', 'cancelled',
           'user_message', ARGV[4], 'finished_at', ARGV[3], 'eta_s', '')
leave_active()
touch(ARGV[3])
return 1
"""
)

# ARGV: prefix, id, token, claim_ms
_BEGIN_DELIVERY = (
    _PRELUDE
    + """
local state = redis.call('HGET', job, 'state')
if state ~= 'done' and state ~= 'failed' and state ~= 'cancelled' then return 0 end
if redis.call('HGET', job, 'delivered_at') then return 0 end
if redis.call('SET', prefix .. ':delivering:' .. id, ARGV[3], 'NX', 'PX', ARGV[4]) then return 1 end
return 0
"""
)

# ARGV: prefix, id, now, record json
_FINISH_DELIVERY = (
    _PRELUDE
    + """
local state = redis.call('HGET', job, 'state')
if not state or redis.call('HGET', job, 'delivered_at') then return 0 end
if state ~= 'done' and state ~= 'failed' and state ~= 'cancelled' then return 0 end
if state == 'done' then enter('delivered', ARGV[3]) end
redis.call('HSET', job, 'delivered_at', ARGV[3], 'delivery', ARGV[4])
redis.call('ZREM', prefix .. ':pending:' .. redis.call('HGET', job, 'platform'), id)
redis.call('DEL', prefix .. ':delivering:' .. id)
touch(ARGV[3])
return 1
"""
)

# ARGV: prefix, id, field, value
_SET_IF_EXISTS = (
    _PRELUDE
    + """
if redis.call('EXISTS', job) == 0 then return 0 end
redis.call('HSET', job, ARGV[3], ARGV[4])
return 1
"""
)


class JobStore:
    """Every read and write of job records. Thread-safe (redis-py pools connections)."""

    def __init__(self, client: redis.Redis, *, result_ttl_s: int, prefix: str = PREFIX):
        if not client.get_connection_kwargs().get("decode_responses"):
            raise ValueError("JobStore needs a Redis client with decode_responses=True")
        self.redis = client
        self.prefix = prefix
        self.result_ttl_s = result_ttl_s
        self._claim = client.register_script(_CLAIM)
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._release = client.register_script(_RELEASE)
        self._requeue_orphan = client.register_script(_REQUEUE_ORPHAN)
        self._progress = client.register_script(_PROGRESS)
        self._finish = client.register_script(_FINISH)
        self._cancel = client.register_script(_CANCEL)
        self._begin_delivery = client.register_script(_BEGIN_DELIVERY)
        self._finish_delivery = client.register_script(_FINISH_DELIVERY)
        self._set_if_exists = client.register_script(_SET_IF_EXISTS)

    @classmethod
    def from_settings(cls, settings) -> JobStore:
        from avatarbot.tasks.connection import redis_client

        return cls(redis_client(settings), result_ttl_s=settings.jobs.result_ttl_s)

    # --- keys --------------------------------------------------------------------------------------
    def _args(self, job_id: str, *rest) -> list:
        return [self.prefix, job_id, *rest]

    # --- create and read ---------------------------------------------------------------------------
    def create(
        self,
        requester: Requester,
        reply_target: ReplyTarget,
        options: JobOptions,
        inputs: dict[str, str],
        *,
        job_id: str | None = None,
        notes: list[str] | None = None,
    ) -> Job:
        now = time.time()
        job = Job(
            id=job_id or new_job_id(),
            requester=requester,
            reply_target=reply_target,
            options=options,
            inputs=dict(inputs),
            state=QUEUED,
            stage=QUEUED,
            created_at=now,
            updated_at=now,
            notes=list(notes or []),
            version=1,
        )
        record = {
            "id": job.id,
            "platform": requester.platform,
            "user_id": requester.user_id,
            "requester": asdict(requester),
            "reply_target": asdict(reply_target),
            "options": asdict(options),
            "inputs": job.inputs,
            "state": QUEUED,
            "stage": QUEUED,
            "created_at": now,
            "updated_at": now,
            "notes": job.notes,
            "attempts": 0,
            "version": 1,
        }
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(keys.job(job.id, self.prefix), mapping={k: _encode(v) for k, v in record.items()})
        # A job waiting longer than this in the queue is abandoned; it is refreshed when it ends.
        pipe.expire(keys.job(job.id, self.prefix), self.result_ttl_s)
        pipe.zadd(keys.queue(self.prefix), {job.id: now})
        pipe.zadd(keys.pending(requester.platform, self.prefix), {job.id: now})
        pipe.zadd(keys.jobs_of(requester.platform, self.prefix), {job.id: now})
        pipe.zremrangebyscore(keys.jobs_of(requester.platform, self.prefix), 0, now - self.result_ttl_s)
        pipe.sadd(keys.active(requester.platform, requester.user_id, self.prefix), job.id)
        pipe.incr(keys.changes(requester.platform, self.prefix))
        pipe.incr(keys.queue_changes(self.prefix))
        pipe.execute()
        return job

    def get(self, job_id: str) -> Job | None:
        raw = self.redis.hgetall(keys.job(job_id, self.prefix))
        return _decode_job(raw) if raw.get("state") else None

    def get_many(self, job_ids: list[str]) -> list[Job]:
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hgetall(keys.job(job_id, self.prefix))
        return [_decode_job(raw) for raw in pipe.execute() if raw.get("state")]

    def state(self, job_id: str) -> str | None:
        return self.redis.hget(keys.job(job_id, self.prefix), "state")

    def list_jobs(self, platform: str, states: set[str] | frozenset[str] | None = None) -> list[Job]:
        """This platform's jobs (within the result TTL), oldest first, optionally by state."""
        # Active jobs are never delivered, so the (short) pending index holds them all.
        index = keys.pending if states is not None and set(states) <= ACTIVE_STATES else keys.jobs_of
        ids = self.redis.zrange(index(platform, self.prefix), 0, -1)
        jobs = self.get_many(ids)
        return [job for job in jobs if states is None or job.state in states]

    def pending(self, platform: str) -> list[Job]:
        """This platform's jobs that are not delivered yet, oldest first."""
        ids = self.redis.zrange(keys.pending(platform, self.prefix), 0, -1)
        jobs = self.get_many(ids)
        gone = set(ids) - {job.id for job in jobs}
        if gone:  # expired records: forget them everywhere, or they would hold a place in line
            self.redis.zrem(keys.pending(platform, self.prefix), *gone)
            self.redis.zrem(keys.queue(self.prefix), *gone)
        return jobs

    def change_counters(self, platform: str) -> tuple[int, int]:
        """(this platform's change counter, the queue's change counter): cheap to poll."""
        mine, queue = self.redis.mget(keys.changes(platform, self.prefix), keys.queue_changes(self.prefix))
        return int(mine or 0), int(queue or 0)

    def queue_position(self, job_id: str) -> int | None:
        """1 for the next job to be taken, None when not waiting."""
        rank = self.redis.zrank(keys.queue(self.prefix), job_id)
        return None if rank is None else rank + 1

    def queue_positions(self, job_ids: list[str]) -> dict[str, int | None]:
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.zrank(keys.queue(self.prefix), job_id)
        return {job_id: None if r is None else r + 1 for job_id, r in zip(job_ids, pipe.execute(), strict=True)}

    def active_count(self, platform: str, user_id: str) -> int:
        return self.redis.scard(keys.active(platform, user_id, self.prefix))

    def set_status_message(self, job_id: str, message_id: str) -> bool:
        return bool(self._set_if_exists(args=self._args(job_id, "status_message_id", message_id)))

    # --- the worker's side -------------------------------------------------------------------------
    def claim(self, job_id: str, token: str, lease_s: float) -> str:
        """'claimed', or why not: 'busy' (a live worker holds it), 'finished', 'missing'."""
        return self._claim(args=self._args(job_id, token, int(lease_s * 1000), time.time()))

    def heartbeat(self, job_id: str, token: str, lease_s: float) -> bool:
        """Renew the lease; False means it was lost (expired and taken over)."""
        return bool(self._heartbeat(args=self._args(job_id, token, int(lease_s * 1000))))

    def release(self, job_id: str, token: str) -> bool:
        """Drop the lease if it is still ours (the attempt is over, whatever its outcome)."""
        return bool(self._release(args=self._args(job_id, token)))

    def progress(
        self, job_id: str, token: str, *, state: str, stage: str, step: int, total: int, eta_s: float | None
    ) -> bool:
        eta = "" if eta_s is None else f"{eta_s:.1f}"
        return bool(self._progress(args=self._args(job_id, token, time.time(), state, stage, step, total, eta)))

    def finish(self, job_id: str, token: str, *, clip_key: str, width: int, height: int, duration: float,
               notes: list[str], work_s: float) -> bool:  # fmt: skip
        fields = {
            "clip_key": clip_key, "width": width, "height": height, "duration": duration,
            "notes": notes, "work_s": work_s,
        }  # fmt: skip
        return self._end(job_id, token, DONE, fields)

    def fail(
        self, job_id: str, token: str | None, *, code: str, user_message: str, notes: list[str] | None = None,
        params: dict | None = None,
    ) -> bool:  # fmt: skip
        """Mark failed. `token` None: no lease check (the job never reached a worker). `code` and
        `params` say what happened in a form any language can render; `user_message` in English."""
        fields: dict[str, Any] = {"error_code": code, "user_message": user_message, "error_params": params or {}}
        if notes is not None:
            fields["notes"] = notes
        return self._end(job_id, token or "", FAILED, fields)

    def _end(self, job_id: str, token: str, state: str, fields: dict[str, Any]) -> bool:
        flat: list[str] = []
        for name, value in fields.items():
            flat += [name, _encode(value)]
        return bool(self._finish(args=self._args(job_id, token, time.time(), state, self.result_ttl_s, *flat)))

    def history(self, job_id: str) -> list[tuple[str, float]]:
        """Every state the job entered after `queued`, with the time, in order."""
        entries = self.redis.lrange(keys.job_history(job_id, self.prefix), 0, -1)
        return [(state, float(at)) for state, at in (entry.split(" ") for entry in entries)]

    def requeue_orphan(self, job_id: str) -> bool:
        """A running job whose lease expired (its worker died) goes back to `queued`; True if
        it did. The caller then sends it a new task message."""
        return bool(self._requeue_orphan(args=self._args(job_id, time.time())))

    def lease_holder(self, job_id: str) -> str | None:
        return self.redis.get(keys.lease(job_id, self.prefix))

    # --- the user's and the bot's side ------------------------------------------------------------
    def cancel(self, job_id: str, user_message: str) -> bool:
        """Cancel a job that has not ended. The worker notices between steps and stops."""
        return bool(self._cancel(args=self._args(job_id, time.time(), user_message, self.result_ttl_s)))

    def begin_delivery(self, job_id: str, token: str, claim_s: float) -> bool:
        return bool(self._begin_delivery(args=self._args(job_id, token, int(claim_s * 1000))))

    def finish_delivery(self, job_id: str, record: dict) -> bool:
        return bool(self._finish_delivery(args=self._args(job_id, time.time(), _encode(record))))

    def abandon_delivery(self, job_id: str) -> None:
        self.redis.delete(keys.delivering(job_id, self.prefix))
