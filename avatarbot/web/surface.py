"""The web page as a surface of the flow (`avatarbot.service.traits`).

The flow's `Lifecycle` owns a web job's whole life exactly as a bot's: intake, quotas, repeats,
status, delivery exactly once, buttons. What "posting" means on a page that asks rather than
being told: the status line and the outcome are kept here, by job, until the page's next poll
reads them, and the clip is put where the page can fetch it (`<data_dir>/web/clips`).

A browser session is the requester (its id is the user id and the "chat"), the page is its
"server", so `jobs.max_per_server_per_hour` caps the page as a whole.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from avatarbot import messages
from avatarbot.service.traits import Action, ErrorKind, Posted
from avatarbot.tasks.jobs import Job, ReplyTarget, Requester
from avatarbot.vocab import Platform

log = logging.getLogger(__name__)

# Every browser session shares this "server": the per-server hourly quota caps the whole page.
PAGE_SERVER_ID = "page"
# The page polls twice a second; a status line changing faster than this would go unseen.
STATUS_INTERVAL_S = 0.25
# Status lines kept for the page to read (the oldest are forgotten; the page then shows the
# line made from the job record, the same words).
WORDS_REMEMBERED = 10_000
CLIP_SUFFIX = ".mp4"


def requester(session_id: str, language: str | None = None) -> Requester:
    """The browser session as the one who asks; `language` is the reader's tag (the flow answers in
    the nearest shipped language)."""
    return Requester(
        platform=Platform.WEB, user_id=session_id, server_id=PAGE_SERVER_ID, display_name="web", language=language
    )


class WebSurface:
    platform = Platform.WEB

    def __init__(self, settings):
        self.settings = settings
        self.clip_dir = Path(settings.data_dir) / "web" / "clips"
        self.clip_dir.mkdir(parents=True, exist_ok=True)
        self._words: OrderedDict[str, str] = OrderedDict()  # job id -> the flow's latest words about it
        self._latest: dict[str, str] = {}  # session id -> the job whose status was posted last

    # --- what the page reads ----------------------------------------------------------------------
    def words(self, job_id: str) -> str | None:
        return self._words.get(job_id)

    def latest_job(self, session_id: str) -> str | None:
        """The session's newest job (how the page finds the take an Again press started)."""
        return self._latest.get(session_id)

    def clip_path(self, job: Job) -> Path | None:
        """Where the page fetches a delivered clip from; None until it is there."""
        name = (job.delivery or {}).get("file")
        if not job.delivered or not name:
            return None
        path = self.clip_dir / name
        return path if path.is_file() else None

    def _say(self, job_id: str, text: str) -> None:
        self._words[job_id] = text
        self._words.move_to_end(job_id)
        while len(self._words) > WORDS_REMEMBERED:
            self._words.popitem(last=False)

    # --- traits.Surface ---------------------------------------------------------------------------
    def edit_interval_s(self, target: ReplyTarget) -> float:
        return STATUS_INTERVAL_S

    async def post_status(self, job: Job, text: str, actions: Sequence[Action]) -> str:
        """The job's status line on the page; its "message id" is the job id."""
        self._say(job.id, text)
        self._latest[job.reply_target.chat_id] = job.id
        return job.id

    async def edit_status(
        self, job: Job, message_id: str, text: str, actions: Sequence[Action], *, urgent: bool = False
    ) -> None:
        self._say(job.id, text)

    async def close_status(self, job: Job, text: str, outcome: Posted) -> None:
        self._say(job.id, text)

    async def post_clip(self, target: ReplyTarget, job: Job, clip, caption: str, actions: Sequence[Action]) -> Posted:
        name = f"{job.id}{CLIP_SUFFIX}"
        await asyncio.to_thread(shutil.copyfile, clip.path, self.clip_dir / name)
        await asyncio.to_thread(self._prune_clips)
        return Posted(message_id=f"{job.id}-clip", record={"file": name, "caption": caption})

    async def post_failure(self, job: Job, text: str) -> Posted:
        self._say(job.id, text)
        return Posted(message_id=job.id, record={"text": text})

    def message_link(self, target: ReplyTarget, message_id: str) -> str | None:
        """None: a repeated request's job is shown on the page itself, below the form."""
        return None

    def upload_limit(self, target: ReplyTarget) -> int:
        """A browser has no upload limit of its own: the stored clip is served as it is."""
        return self.settings.jobs.max_blob_bytes

    def error_kind(self, error: BaseException) -> ErrorKind | None:
        return ErrorKind.TRANSIENT if isinstance(error, OSError) else None  # a full or busy disk

    def _prune_clips(self) -> None:
        """Clips live as long as the blob store keeps their inputs (jobs.blob_ttl_s)."""
        cutoff = time.time() - self.settings.jobs.blob_ttl_s
        for path in self.clip_dir.glob(f"*{CLIP_SUFFIX}"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except FileNotFoundError:
                pass


class FormAnswer:
    """`traits.Answer` for one form submission: the HTTP response is the answer, so there is
    nothing to acknowledge; what the flow says instead of making a job is kept for the response."""

    status_message_id = None  # the flow posts the status line (WebSurface.post_status)
    language = messages.ENGLISH  # set by the flow before it answers (traits.Answer.language)

    def __init__(self):
        self.said: str | None = None

    async def acknowledge(self) -> None:
        pass

    async def say(self, text: str) -> None:
        self.said = text

    async def started(self, text: str) -> None:
        pass
