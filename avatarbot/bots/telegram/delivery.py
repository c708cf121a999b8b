"""From job changes to Telegram messages: progress on the status message while a job runs,
then exactly one post of its outcome.

`flow.updates()` yields every undelivered job first, so a restarted bot picks up where the old
one stopped; `flow.begin_delivery()` lets exactly one process post each outcome.
"""

from __future__ import annotations

import asyncio
import logging

from telegram import Bot, InputFile, ReplyParameters
from telegram.constants import MessageLimit
from telegram.error import BadRequest, Forbidden, TelegramError

from avatarbot import messages
from avatarbot.service.flow import RequestFlow
from avatarbot.settings import Settings

from . import buttons, files
from .retries import call_with_retries
from .status import StatusBoard

log = logging.getLogger(__name__)

# The Bot API has no idempotency key: an upload it stored but answered after our read timeout
# is posted again by the retry. PTB's defaults (5 s read, 20 s media write) are shorter than the
# Bot API can take to process a large video, so uploads wait much longer for their answer; only
# an answer lost outright (or later than this) can still duplicate a clip.
UPLOAD_TIMEOUTS = {"read_timeout": 120.0, "write_timeout": 120.0}

PLATFORM = "telegram"
# The update watcher restarts after an error, waiting this long first.
WATCH_RESTART_S = 2.0
# On shutdown, deliveries under way get this long to finish.
SHUTDOWN_GRACE_S = 30.0


def int_or_none(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


async def status_text(flow: RequestFlow, job) -> str:
    """ "Queued — 3rd in line", or the progress bar with stage and ETA."""
    if job.state == "queued":
        return messages.queued(job.queue_position or await flow.queue_position(job.id))
    return messages.progress(job.stage or job.state, job.step, job.total, job.eta_s)


class Delivery:
    def __init__(self, bot: Bot, flow: RequestFlow, settings: Settings):
        self.bot = bot
        self.flow = flow
        self.settings = settings
        self.status = StatusBoard(bot)
        self._watcher: asyncio.Task | None = None
        self._delivering: set[str] = set()
        self._tasks: set[asyncio.Task] = set()

    def start(self) -> None:
        self._watcher = asyncio.create_task(self._watch(), name="telegram-watcher")

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        # Let uploads under way finish and be recorded: a post cut off between sending and
        # recording would be posted again by the next process.
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=SHUTDOWN_GRACE_S)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.status.close()

    async def _watch(self) -> None:
        while True:
            try:
                async for job in self.flow.updates(PLATFORM):
                    await self._on_job(job)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job watcher failed; restarting")
                await asyncio.sleep(WATCH_RESTART_S)

    async def _on_job(self, job) -> None:
        target = job.reply_target
        chat_id = int(target.chat_id)
        if job.active:
            if job.status_message_id:
                self.status.show(
                    chat_id,
                    job.id,
                    int(job.status_message_id),
                    await status_text(self.flow, job),
                    buttons.status_keyboard(job.id),
                )
            if job.state != "queued":
                await self.status.chat_action(chat_id, int_or_none(target.thread_id))
        elif job.finished and not job.delivered and job.id not in self._delivering:
            self._delivering.add(job.id)
            task = asyncio.create_task(self._deliver(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, job) -> None:
        try:
            if not await self.flow.begin_delivery(job.id):
                return  # another process (or an earlier run of this one) has it
            await self.status.finish(job.id)
            try:
                record = await (self._deliver_clip(job) if job.state == "done" else self._deliver_outcome(job))
            except (BadRequest, Forbidden) as error:
                # The chat is gone, the bot was removed, or Telegram refuses the post for good:
                # trying again would fail the same way every time.
                log.warning("job %s can't be delivered: %s", job.id, error)
                record = {"chat_id": job.reply_target.chat_id, "failed": str(error)}
            except Exception:
                log.exception("delivering job %s failed; it will be offered again", job.id)
                await self.flow.abandon_delivery(job.id)
                return
            await self.flow.finish_delivery(job.id, record)
        finally:
            self._delivering.discard(job.id)

    async def _deliver_clip(self, job) -> dict:
        """sendVideo replying to the request in its topic; a document if Telegram refuses it."""
        target = job.reply_target
        chat_config = await self.flow.chat_settings.get(PLATFORM, target.chat_id)
        # The spoken text (where the chat wants it) and notes such as "no face found".
        lines = [job.options.text] if chat_config.get("captions") and job.options.text else []
        lines += job.notes
        common = {
            "chat_id": int(target.chat_id),
            "message_thread_id": int_or_none(target.thread_id),
            "reply_parameters": ReplyParameters(int(target.message_id), allow_sending_without_reply=True),
            "reply_markup": buttons.clip_keyboard(job.id),
            "caption": "\n".join(lines)[: MessageLimit.CAPTION_LENGTH] or None,
        }
        await self.status.chat_action(int(target.chat_id), int_or_none(target.thread_id))
        clip = await self.flow.clip_for_upload(job.id, files.upload_limit(self.settings))
        with clip, open(clip.path, "rb") as handle:  # noqa: ASYNC230 (opening a local temp file is instant)
            try:
                sent = await call_with_retries(
                    self.bot.send_video,
                    video=InputFile(handle, filename="clip.mp4", read_file_handle=False),
                    width=clip.width,
                    height=clip.height,
                    duration=max(1, round(clip.duration)),
                    thumbnail=InputFile(clip.thumbnail, filename="thumbnail.jpg") if clip.thumbnail else None,
                    supports_streaming=True,
                    **UPLOAD_TIMEOUTS,
                    **common,
                )
                kind = "video"
            except BadRequest as error:
                # Telegram refused it as a video (e.g. an odd encoding): a plain file still works.
                log.warning("sendVideo for job %s refused (%s); sending a document", job.id, error)
                handle.seek(0)
                sent = await call_with_retries(
                    self.bot.send_document,
                    document=InputFile(handle, filename="clip.mp4", read_file_handle=False),
                    **UPLOAD_TIMEOUTS,
                    **common,
                )
                kind = "document"
        await self._remove_status(job)
        return {"chat_id": target.chat_id, "message_id": str(sent.message_id), "as": kind}

    async def _deliver_outcome(self, job) -> dict:
        """A failed or cancelled job: its reason replaces the status message."""
        text = job.user_message or (messages.CANCELLED if job.state == "cancelled" else messages.RENDER_FAILED)
        target = job.reply_target
        if job.status_message_id:
            try:
                await call_with_retries(
                    self.bot.edit_message_text,
                    text=text,
                    chat_id=int(target.chat_id),
                    message_id=int(job.status_message_id),
                )
                return {"chat_id": target.chat_id, "message_id": job.status_message_id, "as": "edit"}
            except BadRequest as error:
                log.info("status message of job %s not editable (%s); replying instead", job.id, error)
        sent = await call_with_retries(
            self.bot.send_message,
            chat_id=int(target.chat_id),
            text=text,
            message_thread_id=int_or_none(target.thread_id),
            reply_parameters=ReplyParameters(int(target.message_id), allow_sending_without_reply=True),
        )
        return {"chat_id": target.chat_id, "message_id": str(sent.message_id), "as": "reply"}

    async def _remove_status(self, job) -> None:
        """The clip replaces the status message."""
        if not job.status_message_id:
            return
        try:
            await self.bot.delete_message(int(job.reply_target.chat_id), int(job.status_message_id))
        except TelegramError as error:
            log.info("status message of job %s not deleted: %s", job.id, error)
