"""`avatarbot animate --queue`: one clip through the same queue and workers the bots use.

It goes through the request flow as platform "cli", so it meets the same checks, quotas and
deduplication as a chat user, and a worker anywhere renders it.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from avatarbot import messages
from avatarbot.errors import (
    EncodeError,
    RenderCancelled,
    RenderError,
    RenderTimeoutError,
)
from avatarbot.tasks.jobs import CANCELLED, DONE, FAILED, Job
from avatarbot.vocab import Platform

log = logging.getLogger(__name__)

POLL_S = 0.25
NO_SIZE_LIMIT = 2**62


def render_via_queue(
    settings,
    photo: bytes,
    audio: bytes | None,
    text: str | None,
    voice_name,
    options,
    out: Path,
    on_progress: Callable[[Job], None],
) -> Path:
    """Submit, report every change through `on_progress`, write the clip to `out`.

    Raises the job's failure as an AvatarbotError (its `user_message` says what went wrong).
    Ctrl-C cancels the job before it propagates."""
    return asyncio.run(_render_via_queue(settings, photo, audio, text, voice_name, options, Path(out), on_progress))


async def _render_via_queue(settings, photo, audio, text, voice_name, options, out: Path, on_progress) -> Path:
    from avatarbot.service.flow import RenderRequest, ReplyTarget, Requester, RequestFlow

    flow = RequestFlow.from_settings(settings)
    job = None
    try:
        requester = Requester(platform=Platform.CLI, user_id=_user(), server_id=None, display_name=_user())
        request = RenderRequest(
            photo=photo, audio=audio, text=text, voice_name=voice_name,
            quality=options.quality, motion=options.motion, seed=options.seed,
        )  # fmt: skip
        job = await flow.submit(requester, ReplyTarget(chat_id=f"cli:{os.getpid()}"), request)
        on_progress(job)
        last = (job.version, job.queue_position)
        while not job.finished:
            await asyncio.sleep(POLL_S)
            job = await flow.get(job.id)
            if job is None:
                raise RenderError(messages.RENDER_FAILED, detail="the job record expired while waiting")
            if (job.version, job.queue_position) != last:
                last = (job.version, job.queue_position)
                on_progress(job)
        return await _deliver(flow, job, out)
    except (KeyboardInterrupt, asyncio.CancelledError):
        if job is not None and not job.finished:
            await flow.cancel(job.id, job.requester.user_id)
        raise
    finally:
        await flow.close()


async def _deliver(flow, job: Job, out: Path) -> Path:
    if job.state == DONE or (job.state not in (FAILED, CANCELLED) and job.clip_key):
        await flow.begin_delivery(job.id)  # best effort: a CLI run is its job's only reader
        with await flow.clip_for_upload(job.id, NO_SIZE_LIMIT) as clip:
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(clip.path, out)
        await flow.finish_delivery(job.id, {"path": str(out)})
        return out
    await flow.begin_delivery(job.id)
    await flow.finish_delivery(job.id, {"error_code": job.error_code})
    if job.state == CANCELLED:
        error_type = RenderCancelled
    else:
        error_type = {"render_timeout": RenderTimeoutError, "encode_failed": EncodeError}.get(
            job.error_code, RenderError
        )
    raise error_type(job.user_message or messages.RENDER_FAILED, detail=f"job {job.id}: {job.error_code}")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return f"uid{os.getuid()}"
