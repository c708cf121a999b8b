"""Status-message edits for every surface, kept under the platform's flood limits.

Each chat gets one flusher that edits at most once per `surface.edit_interval_s(chat)` and always
ends on the latest text: intermediate progress is skipped, the final word never is. Once a job is
finished no progress edit lands any more, not even one already in flight (`finish` waits for it),
so the outcome can't be overwritten by a late progress line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from avatarbot.service.traits import Action, Surface
from avatarbot.tasks.jobs import Job

log = logging.getLogger(__name__)

# Finished jobs remembered (so a late progress report can't reopen one); the oldest are dropped.
FINISHED_REMEMBERED = 10_000


@dataclass
class _Wanted:
    job: Job
    message_id: str
    text: str
    actions: tuple[Action, ...]
    urgent: bool


class StatusBoard:
    def __init__(self, surface: Surface):
        self._surface = surface
        self._wanted: dict[str, dict[str, _Wanted]] = {}  # chat -> job id -> wanted text
        self._shown: dict[str, str] = {}  # job id -> text last shown
        self._flushers: dict[str, asyncio.Task] = {}
        self._editing: dict[str, asyncio.Lock] = {}  # job id -> held while its edit is in flight
        self._finished: dict[str, None] = {}  # insertion-ordered set

    def show(
        self, job: Job, message_id: str, text: str, actions: Sequence[Action] = (), *, urgent: bool = False
    ) -> None:
        """Ask for the status message to say `text`, soon (throttled). `urgent` (the edit that
        tells the sender their request was taken) stays with a newer text waiting in its place."""
        job_id, target = job.id, job.reply_target
        if self._shown.get(job_id) == text or job_id in self._finished:
            return
        waiting = self._wanted.setdefault(target.chat_id, {})
        if job_id in waiting:
            urgent = urgent or waiting[job_id].urgent
        waiting[job_id] = _Wanted(job, str(message_id), text, tuple(actions), urgent)
        flusher = self._flushers.get(target.chat_id)
        if flusher is None or flusher.done():
            self._flushers[target.chat_id] = asyncio.create_task(
                self._flush(target.chat_id), name=f"status-{target.chat_id}"
            )

    def posted(self, job_id: str, text: str) -> None:
        """The status message was just sent saying `text`: no edit needed for the same words."""
        self._shown[job_id] = text

    async def finish(self, job_id: str) -> None:
        """The job is over: no more progress edits, none still in flight."""
        self._finished[job_id] = None
        while len(self._finished) > FINISHED_REMEMBERED:
            del self._finished[next(iter(self._finished))]
        for wanted in self._wanted.values():
            wanted.pop(job_id, None)
        async with self._lock(job_id):
            pass
        self._editing.pop(job_id, None)
        self._shown.pop(job_id, None)

    def _lock(self, job_id: str) -> asyncio.Lock:
        return self._editing.setdefault(job_id, asyncio.Lock())

    async def close(self) -> None:
        for task in self._flushers.values():
            task.cancel()
        await asyncio.gather(*self._flushers.values(), return_exceptions=True)
        self._flushers.clear()

    async def _flush(self, chat_id: str) -> None:
        pending = self._wanted.get(chat_id, {})
        while pending:
            job_id, wanted = next(iter(pending.items()))
            del pending[job_id]
            async with self._lock(job_id):
                if job_id in self._finished:
                    continue
                try:
                    await self._surface.edit_status(
                        wanted.job, wanted.message_id, wanted.text, wanted.actions, urgent=wanted.urgent
                    )
                    self._shown[job_id] = wanted.text
                except Exception as error:  # a status edit is never worth more than a log line
                    log.info("status edit for job %s in %s failed: %s", job_id, chat_id, error)
            await asyncio.sleep(self._surface.edit_interval_s(wanted.job.reply_target))
