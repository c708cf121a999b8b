"""Text in, speech out: check the text, find the voice, pick the engine, fall back when needed.

Engines by `settings.tts.engine`:
- "auto" (default): edge-tts; when it fails or times out, one WARNING for the operator, then espeak-ng.
- "edge": edge-tts only; its failure is the user's `SpeechError`.
- "offline": espeak-ng only; edge-tts is never contacted.
"""

from __future__ import annotations

import asyncio
import logging

from avatarbot.errors import SpeechError
from avatarbot.settings import Settings
from avatarbot.tts.base import MAX_RATE, MIN_RATE, Speech
from avatarbot.tts.edge import EdgeEngine
from avatarbot.tts.offline import EspeakEngine
from avatarbot.tts.text import clean_text
from avatarbot.tts.voices import find_voice

log = logging.getLogger(__name__)


async def speak_async(text: str, voice_name: str | None, settings: Settings, *, rate: float = 1.0) -> Speech:
    """Speech for `text`: an encoded audio file (MP3 or WAV) and its phoneme timings; decode both
    into an `Audio` with `Speech.decode`.

    For code running in an event loop (the bots): nothing here blocks the loop. Bad input raises
    `EmptyTextError`, `TextTooLongError` or `UnknownVoiceError` before any engine runs; no engine
    able to speak raises `SpeechError`. `voice_name` None means `settings.tts.default_voice`.
    """
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ValueError(f"rate must be between {MIN_RATE} and {MAX_RATE}, got {rate}")
    text = clean_text(text, settings.limits.max_text_chars)
    voice = find_voice(voice_name or settings.tts.default_voice)
    mode = settings.tts.engine
    if mode != "offline":
        try:
            return await EdgeEngine(settings.tts.edge_timeout_s).synthesize(text, voice, rate)
        except SpeechError as error:
            if mode == "edge":
                raise
            log.warning("edge-tts failed, speaking with espeak-ng instead: %s", error.detail)
    return await EspeakEngine().synthesize(text, voice, rate)


def speak(text: str, voice_name: str | None, settings: Settings, *, rate: float = 1.0) -> Speech:
    """The same as `speak_async`, for code with no event loop (the CLI, a Celery task)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(speak_async(text, voice_name, settings, rate=rate))
    raise RuntimeError("speak() would block the running event loop; use `await speak_async(...)` there")
