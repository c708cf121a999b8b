"""Progress edits on status messages, kept under Telegram's flood limits.

Telegram allows about one message per second in a chat and 20 per minute in a group (edits
count), so each chat gets one flusher that edits at most once per interval and always ends on
the latest text: intermediate progress is skipped, the final word never is.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from telegram import Bot, InlineKeyboardMarkup
from telegram.constants import ChatAction, FloodLimit
from telegram.error import BadRequest, TelegramError

log = logging.getLogger(__name__)

# Seconds between edits in one chat: 1 msg/s in a private chat, 20 msg/min in a group.
PRIVATE_EDIT_INTERVAL_S = 1.0 / FloodLimit.MESSAGES_PER_SECOND_PER_CHAT
GROUP_EDIT_INTERVAL_S = 60.0 / FloodLimit.MESSAGES_PER_MINUTE_PER_GROUP
# A chat action shows for at most 5 s; repeat it a little sooner.
CHAT_ACTION_REPEAT_S = 4.0
# Finished jobs remembered (so a late progress report can't reopen one); the oldest are dropped.
FINISHED_REMEMBERED = 10_000


@dataclass
class _Wanted:
    message_id: int
    text: str
    markup: InlineKeyboardMarkup | None
    priority: int | None  # for the rate limiter; None: by endpoint (progress waits behind answers)


class StatusBoard:
    def __init__(self, bot: Bot):
        self._bot = bot
        self._wanted: dict[int, dict[str, _Wanted]] = {}  # chat -> job id -> wanted text
        self._shown: dict[str, str] = {}  # job id -> text last shown
        self._flushers: dict[int, asyncio.Task] = {}
        self._last_action: dict[tuple[int, int | None], float] = {}
        self._editing: dict[str, asyncio.Lock] = {}  # job id -> held while its edit is in flight
        self._finished: dict[str, None] = {}  # insertion-ordered set

    def show(
        self,
        chat_id: int,
        job_id: str,
        message_id: int,
        text: str,
        markup: InlineKeyboardMarkup | None = None,
        priority: int | None = None,
    ) -> None:
        """Ask for the status message to say `text`, soon (throttled). `priority`: the rate
        limiter's, e.g. ANSWER for the edit that tells the sender their request was taken; a
        newer text waiting in its place keeps it."""
        if self._shown.get(job_id) == text or job_id in self._finished:
            return
        waiting = self._wanted.setdefault(chat_id, {})
        if job_id in waiting and waiting[job_id].priority is not None:
            priority = waiting[job_id].priority if priority is None else min(priority, waiting[job_id].priority)
        waiting[job_id] = _Wanted(message_id, text, markup, priority)
        if chat_id not in self._flushers or self._flushers[chat_id].done():
            self._flushers[chat_id] = asyncio.create_task(self._flush(chat_id), name=f"status-{chat_id}")

    def posted(self, job_id: str, text: str) -> None:
        """The status message was just sent saying `text`: no edit needed for the same words."""
        self._shown[job_id] = text

    async def finish(self, job_id: str) -> None:
        """The job is over: no more progress edits, and none still in flight, so the final
        words (or the clip replacing the message) can't be overwritten by a late one."""
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

    async def chat_action(self, chat_id: int, thread_id: int | None) -> None:
        """`upload_video` while rendering, repeated no more often than it lasts."""
        loop = asyncio.get_running_loop()
        key = (chat_id, thread_id)
        if loop.time() - self._last_action.get(key, -CHAT_ACTION_REPEAT_S) < CHAT_ACTION_REPEAT_S:
            return
        self._last_action[key] = loop.time()
        try:
            await self._bot.send_chat_action(chat_id, ChatAction.UPLOAD_VIDEO, message_thread_id=thread_id)
        except TelegramError as error:
            log.info("chat action in %s failed: %s", chat_id, error)

    async def close(self) -> None:
        for task in self._flushers.values():
            task.cancel()
        await asyncio.gather(*self._flushers.values(), return_exceptions=True)
        self._flushers.clear()

    async def _flush(self, chat_id: int) -> None:
        interval = PRIVATE_EDIT_INTERVAL_S if chat_id > 0 else GROUP_EDIT_INTERVAL_S
        pending = self._wanted.get(chat_id, {})
        while pending:
            job_id, wanted = next(iter(pending.items()))
            del pending[job_id]
            async with self._lock(job_id):
                if job_id in self._finished:
                    continue
                try:
                    # rate_limit_args only where asked: a plain Bot (not the Application's ExtBot) has none.
                    priority = {} if wanted.priority is None else {"rate_limit_args": wanted.priority}
                    await self._bot.edit_message_text(
                        wanted.text,
                        chat_id=chat_id,
                        message_id=wanted.message_id,
                        reply_markup=wanted.markup,
                        **priority,
                    )
                    self._shown[job_id] = wanted.text
                except BadRequest as error:
                    # "message is not modified" or the message was deleted: nothing to retry.
                    log.debug("status edit in %s skipped: %s", chat_id, error)
                except TelegramError as error:
                    log.info("status edit in %s failed: %s", chat_id, error)
            await asyncio.sleep(interval)
