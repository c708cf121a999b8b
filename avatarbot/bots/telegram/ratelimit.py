"""Telegram's flood limits, with answers to people ahead of progress edits.

The Bot API allows about 30 messages a second per bot and 20 a minute per group; edits and chat
actions count too. Under load a bot wants to send more than that: every request needs an answer
(a refusal or its status message), and every job in progress wants its status edited. PTB's
AIORateLimiter serves requests in arrival order, so answers queue behind progress edits:
bench/load.py measured a 17 s p99 acknowledgement at 1,000 requests a minute with it. Here a
waiting answer always goes before a waiting edit; edits get what capacity is left (the status
board already skips intermediate progress, so the final words still arrive).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from telegram.constants import FloodLimit
from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

from .retries import seconds

log = logging.getLogger(__name__)

ANSWER = 0
BACKGROUND = 1
# Endpoints whose calls can wait while people are being answered: progress, chat actions,
# tidying up the status message a clip replaced.
BACKGROUND_ENDPOINTS = frozenset({"editMessageText", "editMessageReplyMarkup", "sendChatAction", "deleteMessage"})
GROUP_PERIOD_S = 60.0
# Past this many groups seen, buckets with nothing owed are forgotten.
GROUPS_REMEMBERED = 1000


def priority_of(endpoint: str) -> int:
    return BACKGROUND if endpoint in BACKGROUND_ENDPOINTS else ANSWER


class PriorityBucket:
    """A token bucket (`capacity` calls, refilled over `period_s`) whose waiters are served by
    priority, then in arrival order."""

    def __init__(self, capacity: float, period_s: float):
        self.capacity = capacity
        self.refill_per_s = capacity / period_s
        self.tokens = capacity
        self.updated = time.monotonic()
        self._waiters: list[tuple[int, int, asyncio.Future]] = []  # heap of (priority, arrival, future)
        self._arrivals = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def idle(self) -> bool:
        self._refill()
        return not self._waiters and self.tokens >= self.capacity

    async def acquire(self, priority: int) -> None:
        self._refill()
        if not self._waiters and self.tokens >= 1:
            self.tokens -= 1
            return
        granted = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._arrivals), granted))
        self._schedule()
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.tokens += 1  # granted just as the caller gave up: the next waiter may use it
                self._grant()
            raise

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.refill_per_s)
        self.updated = now

    def _schedule(self) -> None:
        if self._timer is None and self._waiters:
            wait_s = max(0.0, (1 - self.tokens) / self.refill_per_s)
            self._timer = asyncio.get_running_loop().call_later(wait_s, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._grant()

    def _grant(self) -> None:
        self._refill()
        while self._waiters and self.tokens >= 1:
            _, _, granted = heapq.heappop(self._waiters)
            if granted.done():  # its caller was cancelled while waiting
                continue
            self.tokens -= 1
            granted.set_result(None)
        self._schedule()


class PriorityRateLimiter(BaseRateLimiter[int]):
    """Plugged into PTB's `ApplicationBuilder.rate_limiter`. A 429 pauses every call for the
    time Telegram asks, then the call is tried again, up to `max_retries` times.

    A call's priority comes from its endpoint; a caller can name it instead with
    `rate_limit_args=ANSWER` (an edit that carries a refusal is an answer, not progress)."""

    def __init__(self, max_retries: int = 0, overall_per_s: float = FloodLimit.MESSAGES_PER_SECOND,
                 group_per_minute: float = FloodLimit.MESSAGES_PER_MINUTE_PER_GROUP):  # fmt: skip
        self.max_retries = max_retries
        self._overall = PriorityBucket(overall_per_s, 1.0)
        self._group_per_minute = group_per_minute
        self._groups: dict[int | str, PriorityBucket] = {}
        self._not_paused = asyncio.Event()
        self._not_paused.set()

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        chat_id = data.get("chat_id")
        if chat_id is None:  # getUpdates, getFile, getMe...: not a message to anyone
            return await callback(*args, **kwargs)
        priority = priority_of(endpoint) if rate_limit_args is None else rate_limit_args
        group = self._group_bucket(chat_id)
        attempt = 0
        while True:
            await self._not_paused.wait()
            if group is not None:
                await group.acquire(priority)
            await self._overall.acquire(priority)
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as error:
                if attempt == self.max_retries:
                    raise
                attempt += 1
                pause_s = seconds(error.retry_after)
                log.info("%s: Telegram asked to wait %.0f s (flood limit); waiting", endpoint, pause_s)
                self._not_paused.clear()
                try:
                    await asyncio.sleep(pause_s + 0.1)
                finally:
                    self._not_paused.set()

    def _group_bucket(self, chat_id: Any) -> PriorityBucket | None:
        """The per-group bucket: groups and channels have negative ids (or an @username); private
        chats (positive ids) have no per-chat bucket here."""
        try:
            chat_id = int(chat_id)
        except (TypeError, ValueError):
            pass
        if isinstance(chat_id, int) and chat_id > 0:
            return None
        if len(self._groups) > GROUPS_REMEMBERED:
            for idle in [key for key, bucket in self._groups.items() if bucket.idle]:
                del self._groups[idle]
        if chat_id not in self._groups:
            self._groups[chat_id] = PriorityBucket(self._group_per_minute, GROUP_PERIOD_S)
        return self._groups[chat_id]
