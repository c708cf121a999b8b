"""A job's whole life on one surface: intake, repeats, status, delivery and buttons.

One `Lifecycle` per running surface (`Lifecycle(flow, surface)`); the surface calls
`handle_request` for each request and `press` for each button press, and `start()` / `stop()`
around its own life. Everything both bots would otherwise write twice is here:

- intake: declared sizes, types and durations checked before anything is fetched; the first
  answer before any download (a chat that refuses it gets nothing fetched or rendered); each
  download under one overall deadline; the chat's defaults, quotas and deduplication;
- repeats: the same request while the first is still on its way is told so, pointing at the
  status message above; after delivery, the stored clip is posted again as a reply (no render),
  or rendered again when the clip is gone;
- the watch loop: throttled status edits, then exactly one outcome per job (the flow's delivery
  claim); a clip that can't be delivered for good (too big even re-encoded, expired, refused by
  the platform) is answered once; transient platform errors are retried, then given up, once;
- buttons: the press is bound to the message it came from, and only the requester or a moderator
  of that chat may act.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter
from dataclasses import dataclass

from avatarbot import messages
from avatarbot.errors import AvatarbotError
from avatarbot.observability import requests as request_metrics
from avatarbot.service import intake, replies
from avatarbot.service.chat_config import ChatConfig
from avatarbot.service.flow import RenderRequest, RequestFlow
from avatarbot.service.status import StatusBoard
from avatarbot.service.traits import (
    CLIP_ACTIONS,
    STATUS_ACTIONS,
    Action,
    Answer,
    ErrorKind,
    Posted,
    Press,
    Source,
    Surface,
)
from avatarbot.tasks.jobs import Job, ReplyTarget, Requester
from avatarbot.tts.voices import default_voice_for
from avatarbot.vocab import JobState

log = logging.getLogger(__name__)

# The watcher restarts after an unexpected error, waiting this long first.
WATCH_RESTART_S = 2.0
# On shutdown, deliveries under way get this long to finish (a post cut off between sending and
# recording would be posted again by the next process).
SHUTDOWN_GRACE_S = 30.0
# A delivery that fails for a transient reason is offered again (flow.updates re-offers it every
# few seconds to half a minute); after this many failed attempts it is given up, once.
DELIVERY_ATTEMPTS = 3


@dataclass(frozen=True)
class PressOutcome:
    """What to show the presser, and whether the surface should delete the pressed message."""

    text: str
    delete_message: bool = False


class Lifecycle:
    def __init__(self, flow: RequestFlow, surface: Surface):
        self.flow = flow
        self.surface = surface
        self.platform = str(surface.platform)
        self.board = StatusBoard(surface)
        self._watcher: asyncio.Task | None = None
        self._delivering: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        self._failed_attempts: Counter = Counter()

    # --- life ---------------------------------------------------------------------------------------
    def start(self) -> None:
        self._watcher = asyncio.create_task(self._watch(), name=f"{self.platform}-jobs")

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=SHUTDOWN_GRACE_S)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.board.close()

    # --- intake -------------------------------------------------------------------------------------
    async def handle_request(
        self, answer: Answer, requester: Requester, reply_to: ReplyTarget, photo: Source,
        sound: Source | None = None, text: str | None = None, *, voice_name: str | None = None,
        quality: str | None = None, motion: float | None = None, platform_max_bytes: int | None = None,
    ) -> Job | None:  # fmt: skip
        """Answer one request, whatever becomes of it; the job, if one was made or found."""
        first_answer = request_metrics.FirstAnswer(self.platform)
        limits, tts = self.flow.settings.limits, self.flow.settings.tts
        cap = intake.byte_cap(self.flow.settings, photo, platform_max_bytes)
        lang = messages.resolve(requester.language)
        try:
            config = await self._chat_config(requester.server_id or reply_to.chat_id)
            # Every answer to this request, and every text about its job, is in one language.
            lang = replies.for_request(requester, config)
            requester = dataclasses.replace(requester, language=lang)
            answer.language = lang
            intake.check_declared_photo(photo, cap)
            if sound is not None:
                intake.check_declared_sound(sound, cap, limits.max_audio_seconds)
            async with self.flow.intake(requester):  # a refusal by quota costs no download
                try:
                    await answer.acknowledge()
                    first_answer.answered()
                except AvatarbotError:
                    raise
                except Exception as error:
                    log.warning("request from %s:%s in %s dropped: the first answer failed (%s); nothing fetched",
                                self.platform, requester.user_id, reply_to.chat_id, error)  # fmt: skip
                    return None
                photo_bytes = await intake.download(photo, cap, limits.download_deadline_s)
                audio = await intake.download(sound, cap, limits.download_deadline_s) if sound is not None else None
                request = RenderRequest(
                    photo=photo_bytes, audio=audio, text=text if audio is None else None,
                    voice_name=voice_name or config.default_voice or default_voice_for(lang, tts.default_voice),
                    quality=quality or config.quality, motion=motion,
                )  # fmt: skip
                job = await self.flow.submit(requester, reply_to, request)
        except AvatarbotError as error:
            log.info("request from %s:%s refused: %s (%s)", self.platform, requester.user_id, error.detail, error.code)
            request_metrics.observe_refusal(self.platform, error.code)
            await answer.say(messages.for_error(error, lang))
            first_answer.answered()
            return None
        except Exception:
            log.exception("request from %s:%s failed", self.platform, requester.user_id)
            await answer.say(messages.text("unexpected", lang))
            first_answer.answered()
            return None
        if job.duplicate:
            await self._repeat(answer, job, reply_to)
        else:
            await self._show_first_status(answer, job)
        return job

    async def _chat_config(self, chat_id: str) -> ChatConfig:
        """The chat's settings; the defaults when Redis can't say (the quota check that follows
        refuses the request with the usual "try again in a few minutes")."""
        try:
            return await self.flow.chat_config.get(self.platform, chat_id)
        except Exception as error:
            log.warning("chat config of %s:%s unreadable (%s); using the defaults", self.platform, chat_id, error)
            return ChatConfig()

    async def _repeat(self, answer: Answer, job: Job, reply_to: ReplyTarget) -> None:
        lang = answer.language  # the new request's, not the first one's
        if not job.delivered:
            log.info("job %s: repeated while on its way", job.id)
            link = self.surface.message_link(job.reply_target, job.status_message_id) if job.status_message_id else None
            await answer.say(messages.already_asked(link, lang))
            return
        log.info("job %s: repeated after delivery; posting the clip again", job.id)
        try:
            posted = await self._post_clip(reply_to, job)
        except AvatarbotError as error:
            await answer.say(messages.for_error(error, lang))
            return
        except Exception as error:
            log.warning("job %s: posting the clip again failed: %s", job.id, error)
            await answer.say(messages.text("delivery_failed", lang))
            return
        await answer.say(messages.text("clip_again", lang))
        log.info("job %s: posted again as message %s", job.id, posted.message_id)

    async def _show_first_status(self, answer: Answer, job: Job) -> None:
        text = replies.status(job)
        message_id = answer.status_message_id
        if message_id is not None:
            self.board.show(job, message_id, text, STATUS_ACTIONS, urgent=True)
        else:
            message_id = await self._post_status(job, text)
        if message_id is not None:
            await self._record_status(job, message_id)
        await answer.started(replies.say(messages.STARTED, job))

    async def _post_status(self, job: Job, text: str) -> str | None:
        try:
            message_id = await self.surface.post_status(job, text, STATUS_ACTIONS)
        except Exception as error:
            log.warning("status message for job %s failed: %s", job.id, error)
            return None
        self.board.posted(job.id, text)
        return message_id

    async def _record_status(self, job: Job, message_id: str) -> None:
        await self.flow.set_status_message(job.id, message_id)
        await self.flow.remember_post(self.platform, job.reply_target.chat_id, message_id, job.id)
        # A quick job can be delivered before its status message was recorded; then nobody else
        # will ever end that message.
        latest = await self.flow.get(job.id)
        if latest is not None and latest.delivered:
            await self._close_status(latest, Posted((latest.delivery or {}).get("message_id", "")))

    # --- buttons ------------------------------------------------------------------------------------
    async def press(self, press: Press) -> PressOutcome:
        """What to tell the presser, in the presser's language (or the chat's)."""
        job = await self.flow.get(press.job_id)
        lang = replies.for_request(press.presser, await self._chat_config(press.presser.server_id or press.chat_id))
        outcome = await self._press(press, job, dataclasses.replace(press.presser, language=lang))
        return dataclasses.replace(outcome, text=messages.localize(outcome.text, lang))

    async def _press(self, press: Press, job: Job | None, presser: Requester) -> PressOutcome:
        if job is None:
            # The record expired; a moderator may still clean up our message.
            if press.action == Action.DELETE and await press.is_moderator():
                return PressOutcome(messages.DELETED, delete_message=True)
            return PressOutcome(messages.JOB_GONE)
        if not await self._pressed_on_its_message(press, job):
            log.warning("press %s on job %s from message %s:%s, which isn't that job's: refused",
                        press.action, job.id, press.chat_id, press.message_id)  # fmt: skip
            return PressOutcome(messages.NOT_THIS_MESSAGE)
        owner = press.presser.platform == job.requester.platform and press.presser.user_id == job.requester.user_id
        if not owner and not await press.is_moderator():
            return PressOutcome(messages.NOT_YOURS)
        try:
            if press.action == Action.CANCEL:
                if job.active and await self.flow.cancel(job.id, press.presser.user_id, force=not owner):
                    return PressOutcome(messages.CANCELLING)
                return PressOutcome(messages.ALREADY_FINISHED)
            if press.action == Action.AGAIN:
                if press.before_acting is not None:
                    await press.before_acting()
                new_job = await self.flow.again(job.id, presser)
                if not new_job.duplicate:
                    message_id = await self._post_status(new_job, replies.status(new_job))
                    if message_id is not None:
                        await self._record_status(new_job, message_id)
                return PressOutcome(messages.AGAIN_STARTED)
            return PressOutcome(messages.DELETED, delete_message=True)
        except AvatarbotError as error:
            log.info("%s on job %s refused: %s", press.action, job.id, error.detail)
            return PressOutcome(messages.for_error(error, presser.language))

    async def _pressed_on_its_message(self, press: Press, job: Job) -> bool:
        """The button data names a job; the message it was pressed on must be that job's
        (its status message, its clip, or a repeat of its clip)."""
        if press.message_id is None or press.chat_id != job.reply_target.chat_id:
            return False
        own = {job.status_message_id, (job.delivery or {}).get("message_id")}
        if press.message_id in own:
            return True
        return await self.flow.job_of_post(self.platform, press.chat_id, press.message_id) == job.id

    # --- the watch loop -----------------------------------------------------------------------------
    async def _watch(self) -> None:
        while True:
            try:
                async for job in self.flow.updates(self.platform):
                    try:
                        self._on_job(job)
                    except Exception:
                        log.exception("handling an update of job %s failed", job.id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the %s job watcher failed; restarting", self.platform)
                await asyncio.sleep(WATCH_RESTART_S)

    def _on_job(self, job: Job) -> None:
        if job.active:
            if job.status_message_id:
                self.board.show(job, job.status_message_id, replies.status(job), STATUS_ACTIONS)
        elif job.finished and not job.delivered and job.id not in self._delivering:
            self._delivering.add(job.id)
            task = asyncio.create_task(self._deliver(job), name=f"deliver-{job.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, job: Job) -> None:
        try:
            if not await self.flow.begin_delivery(job.id):
                return  # another process (or an earlier pass) has it
            await self.board.finish(job.id)
            outcome = None
            try:
                record, outcome = await self._post_outcome(job)
                request_metrics.observe_delivery(self.platform, record)
            except asyncio.CancelledError:
                await self.flow.abandon_delivery(job.id)
                raise
            except Exception as error:
                record = await self._delivery_failed(job, error)
                request_metrics.observe_delivery(self.platform, record)
                if record is None:
                    return
            self._failed_attempts.pop(job.id, None)
            # Recorded first, the status message ended after: a crash in between costs a status
            # line, never a second post.
            await self.flow.finish_delivery(job.id, record)
            if outcome is not None:
                await self._close_status(job, outcome)
        finally:
            self._delivering.discard(job.id)

    async def _delivery_failed(self, job: Job, error: Exception) -> dict | None:
        """The record to finish the delivery with, or None when it is to be tried again."""
        kind = self.surface.error_kind(error)
        if kind is None:
            log.error("delivering job %s failed unexpectedly", job.id, exc_info=error)
        if kind == ErrorKind.PERMANENT:
            log.warning("job %s can't be delivered in %s: %s", job.id, job.reply_target.chat_id, error)
            return {"undeliverable": str(error)[:200] or type(error).__name__}
        self._failed_attempts[job.id] += 1
        if self._failed_attempts[job.id] < DELIVERY_ATTEMPTS:
            log.warning("delivering job %s failed (%s), attempt %d of %d; it will be offered again",
                        job.id, error, self._failed_attempts[job.id], DELIVERY_ATTEMPTS)  # fmt: skip
            await self.flow.abandon_delivery(job.id)
            return None
        log.error("delivering job %s failed %d times; giving up", job.id, DELIVERY_ATTEMPTS)
        self._failed_attempts.pop(job.id, None)
        try:
            await self.surface.post_failure(job, replies.say(messages.DELIVERY_FAILED, job))
        except Exception as final:
            log.warning("job %s: not even the failure could be posted: %s", job.id, final)
        return {"gave_up": type(error).__name__, "error_code": "delivery_failed"}

    async def _post_outcome(self, job: Job) -> tuple[dict, Posted]:
        """Post the job's outcome: the delivery record, and the message that carries it."""
        if job.state == JobState.DONE:
            try:
                posted = await self._post_clip(job.reply_target, job)
            except AvatarbotError as error:
                # The clip can't be made to fit, or expired: say so once instead of retrying for ever.
                log.warning("job %s: clip not deliverable: %s", job.id, error.detail)
                return await self._post_clip_failure(job, error.user_message, error.code, error.params)
            except Exception as error:
                if self.surface.error_kind(error) != ErrorKind.PERMANENT:
                    raise
                # The platform refused the clip for good (too big for the chat after all, say):
                # tell the requester once; if even that is refused, the record says why.
                log.warning("job %s: the platform refused the clip: %s", job.id, error)
                record, posted = await self._post_clip_failure(job, messages.CLIP_REFUSED, "clip_refused")
                return {**record, "undeliverable": str(error)[:200] or type(error).__name__}, posted
            return {**posted.record, "message_id": posted.message_id}, posted
        posted = await self.surface.post_failure(job, replies.outcome(job))
        await self._remember(job, posted)
        record = {**posted.record, "message_id": posted.message_id, "error_code": job.error_code,
                  "error_params": job.error_params}  # fmt: skip
        return record, posted

    async def _post_clip_failure(
        self, job: Job, text: str, code: str, params: dict | None = None
    ) -> tuple[dict, Posted]:
        """Say a clip's failure (`text` in English, `code` + `params` for the job's language) once."""
        posted = await self.surface.post_failure(job, messages.from_record(code, params, replies.language(job), text))
        await self._remember(job, posted)
        record = {**posted.record, "message_id": posted.message_id, "error": text, "error_code": code,
                  "error_params": params or {}}  # fmt: skip
        return record, posted

    async def _post_clip(self, target: ReplyTarget, job: Job) -> Posted:
        config = await self._chat_config(job.requester.server_id or target.chat_id)
        with await self.flow.clip_for_upload(job.id, self.surface.upload_limit(target)) as clip:
            posted = await self.surface.post_clip(target, job, clip, replies.caption(job, config), CLIP_ACTIONS)
        log.info("job %s posted as message %s (%d bytes)", job.id, posted.message_id, clip.size_bytes)
        await self._remember(job, posted, target.chat_id)
        return posted

    async def _remember(self, job: Job, posted: Posted, chat_id: str | None = None) -> None:
        if posted.message_id:
            chat_id = chat_id or job.reply_target.chat_id
            await self.flow.remember_post(self.platform, chat_id, posted.message_id, job.id)

    async def _close_status(self, job: Job, outcome: Posted) -> None:
        """The outcome is posted and recorded: the status message ends (on the record's words)."""
        if not job.status_message_id:
            return
        ended = await self.flow.get(job.id) or job
        try:
            await self.surface.close_status(ended, replies.final_status(ended), outcome)
        except Exception as error:
            log.info("final status of job %s not shown: %s", job.id, error)
