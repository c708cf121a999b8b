"""The web page as a surface of the request flow: everything here talks to the flow, nothing else does.

A browser session is the requester (its id is the user id), the page is its "server" (so
`jobs.max_per_server_per_hour` caps the page as a whole), and "posting" an outcome means putting
the clip where the page can fetch it. The checks, quotas, repeats, queue and delivery bookkeeping
are the flow's, exactly as for the two bots.

The delivery loop at the bottom (`watch`) stands in for the flow's own loop until the job
lifecycle moves into the flow; `post_clip` / `post_failure` / `upload_limit` are the calls that
loop will make on a surface.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from pathlib import Path

import redis

from avatarbot import messages
from avatarbot.bots.flow import Job, RenderRequest, ReplyTarget, Requester, RequestFlow
from avatarbot.errors import QueueUnavailableError
from avatarbot.tasks.jobs import CANCELLED, DONE

log = logging.getLogger(__name__)

# The platform value of web jobs in job records and quota keys (to move into vocab's Platform).
WEB_PLATFORM = "web"
# Every browser session shares this "server": the per-server hourly quota caps the whole page.
PAGE_SERVER_ID = "page"
# The delivery loop restarts after an error, waiting this long first.
WATCH_RESTART_S = 2.0
CLIP_SUFFIX = ".mp4"


class WebSurface:
    def __init__(self, flow: RequestFlow, settings):
        self.flow = flow
        self.settings = settings
        self.clip_dir = Path(settings.data_dir) / "web" / "clips"
        self.clip_dir.mkdir(parents=True, exist_ok=True)

    # --- requests ---------------------------------------------------------------------------------
    @staticmethod
    def requester(session_id: str) -> Requester:
        return Requester(platform=WEB_PLATFORM, user_id=session_id, server_id=PAGE_SERVER_ID, display_name="web")

    def intake(self, session_id: str):
        """Around reading an upload and `submit`: a full quota is refused before the upload is read."""
        return self.flow.intake(self.requester(session_id))

    async def submit(self, session_id: str, request: RenderRequest) -> Job:
        return await self.flow.submit(self.requester(session_id), ReplyTarget(chat_id=session_id), request)

    async def job_for(self, session_id: str, job_id: str) -> Job | None:
        """The job, if this session asked for it: other sessions' jobs don't exist for it."""
        try:
            job = await self.flow.get(job_id)
        except redis.exceptions.ConnectionError as error:
            raise QueueUnavailableError(messages.QUEUE_UNAVAILABLE, detail=f"redis: {error}") from error
        if job is None or job.requester.platform != WEB_PLATFORM or job.requester.user_id != session_id:
            return None
        return job

    async def cancel(self, session_id: str, job_id: str) -> bool:
        return await self.flow.cancel(job_id, session_id)

    async def again(self, session_id: str, job_id: str) -> Job:
        return await self.flow.again(job_id, self.requester(session_id))

    def clip_path(self, job: Job) -> Path | None:
        """Where the page fetches a delivered clip from; None until it is there."""
        if not job.delivered or not (job.delivery or {}).get("file"):
            return None
        path = self.clip_dir / job.delivery["file"]
        return path if path.is_file() else None

    # --- what the flow's delivery asks of a surface --------------------------------------------
    def upload_limit(self) -> int:
        """A browser has no upload limit of its own: the stored clip is served as it is."""
        return self.settings.jobs.max_blob_bytes

    async def post_clip(self, job: Job, clip) -> dict:
        name = f"{job.id}{CLIP_SUFFIX}"
        await asyncio.to_thread(shutil.copyfile, clip.path, self.clip_dir / name)
        await asyncio.to_thread(self._prune_clips)
        return {"file": name, "as": "page"}

    async def post_failure(self, job: Job, text: str) -> dict:
        """Nothing to send: the page reads the reason from the job when it next asks."""
        return {"as": "page", "text": text}

    def _prune_clips(self) -> None:
        """Clips live as long as the blob store keeps their inputs (jobs.blob_ttl_s)."""
        cutoff = time.time() - self.settings.jobs.blob_ttl_s
        for path in self.clip_dir.glob(f"*{CLIP_SUFFIX}"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except FileNotFoundError:
                pass

    # --- delivery loop (the flow's job once the lifecycle lives there) -------------------------
    async def watch(self) -> None:
        while True:
            try:
                async for job in self.flow.updates(WEB_PLATFORM):
                    if job.finished and not job.delivered:
                        await self._deliver(job)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("web job watcher failed; restarting")
                await asyncio.sleep(WATCH_RESTART_S)

    async def _deliver(self, job: Job) -> None:
        if not await self.flow.begin_delivery(job.id):
            return
        try:
            if job.state == DONE:
                with await self.flow.clip_for_upload(job.id, self.upload_limit()) as clip:
                    record = await self.post_clip(job, clip)
            else:
                text = job.user_message or (messages.CANCELLED if job.state == CANCELLED else messages.RENDER_FAILED)
                record = await self.post_failure(job, text)
        except Exception:
            log.exception("web job %s: delivery failed; it will be offered again", job.id)
            await self.flow.abandon_delivery(job.id)
            return
        await self.flow.finish_delivery(job.id, record)
        log.info("web job %s delivered (%s)", job.id, job.state)
