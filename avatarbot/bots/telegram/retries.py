"""Bot API calls that survive a flaky network.

429s are waited out by the rate limiter (ratelimit.py) before we see them; what reaches us here is a
network error or a 5xx (PTB raises both as NetworkError), retried with doubling pauses, or a
refusal (BadRequest, Forbidden), which no retry would change.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from telegram import InputFile
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter

log = logging.getLogger(__name__)

ATTEMPTS = 4
FIRST_PAUSE_S = 1.0


def seconds(value: float | timedelta) -> float:
    """PTB gives durations (RetryAfter.retry_after) as an int or a timedelta, by setting."""
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


async def call_with_retries(call, **kwargs):
    """`await call(**kwargs)`, retried on network errors; uploads restart from their first byte."""
    pause = FIRST_PAUSE_S
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await call(**kwargs)
        except (BadRequest, Forbidden):
            raise
        except RetryAfter as error:  # the rate limiter's own retries ran out
            if attempt == ATTEMPTS:
                raise
            await asyncio.sleep(seconds(error.retry_after))
        except NetworkError as error:
            if attempt == ATTEMPTS:
                raise
            log.info("%s failed (attempt %d/%d): %s", getattr(call, "__name__", "call"), attempt, ATTEMPTS, error)
            for value in kwargs.values():
                if isinstance(value, InputFile) and hasattr(value.input_file_content, "seek"):
                    value.input_file_content.seek(0)
            await asyncio.sleep(pause)
            pause *= 2
    raise AssertionError("unreachable")
