"""What every speech engine offers, so the fallback logic can treat them alike."""

from __future__ import annotations

from typing import Protocol

from avatarbot.tts.voices import Voice

# Speaking speed as a multiple of the engine's normal speed. Outside this range both engines
# become hard to understand.
MIN_RATE = 0.5
MAX_RATE = 2.0


class SpeechEngine(Protocol):
    """Turns clean text into an encoded audio file (MP3 from edge-tts, WAV from espeak-ng).

    `synthesize` is a coroutine because the main engine, edge-tts, is an asyncio websocket client;
    an engine that must block (a subprocess) waits without blocking the event loop. Engines report
    every failure as `SpeechError`, with what went wrong in its `detail`.
    """

    name: str

    async def synthesize(self, text: str, voice: Voice, rate: float = 1.0) -> bytes: ...
