"""What every speech engine offers, so the fallback logic can treat them alike."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from avatarbot.media.types import Audio, Phoneme
from avatarbot.tts.voices import Voice

# Speaking speed as a multiple of the engine's normal speed. Outside this range both engines
# become hard to understand.
MIN_RATE = 0.5
MAX_RATE = 2.0


@dataclass(frozen=True)
class Speech:
    """What an engine says: an encoded audio file and when each phoneme is heard in it.

    The timings let the lite engine shape the lips for what is said instead of guessing it from
    the sound; they are empty where the engine could not report them.
    """

    data: bytes  # MP3 from edge-tts, WAV from espeak-ng
    phonemes: tuple[Phoneme, ...] = ()

    def decode(self, limits, *, sample_rate: int = 16_000) -> Audio:
        """The checked, decoded audio (`media.audio.load_audio`) with the phoneme timings on it."""
        from avatarbot.media.audio import load_audio

        return replace(load_audio(self.data, limits, sample_rate=sample_rate), phonemes=self.phonemes)


class SpeechEngine(Protocol):
    """Turns clean text into `Speech`: an encoded audio file with its phoneme timings.

    `synthesize` is a coroutine because the main engine, edge-tts, is an asyncio websocket client;
    an engine that must block (a subprocess) waits without blocking the event loop. Engines report
    every failure as `SpeechError`, with what went wrong in its `detail`.
    """

    name: str

    async def synthesize(self, text: str, voice: Voice, rate: float = 1.0) -> Speech: ...
