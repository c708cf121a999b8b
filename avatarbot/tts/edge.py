"""Microsoft's neural voices through edge-tts: natural speech, but an online service.

edge-tts 7.x limits only single steps of a request, never the whole of it
(`aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)` in edge_tts/communicate.py):
a peer that accepts the connection and then stalls or trickles holds a user for ten seconds to
minutes (older versions: forever). So every call here runs under `timeout_s`, and every way it can
fail becomes a `SpeechError` that the caller may answer with the offline engine.

The service also says when each word is heard: "WordBoundary" events, asked for with
`boundary="WordBoundary"` (an argument since edge-tts 7.2, whose default is sentence
boundaries). `tts/phonemes.py` turns them into phoneme timings for the lite engine's lips.
"""

from __future__ import annotations

import asyncio
import logging

import edge_tts

from avatarbot import messages
from avatarbot.errors import SpeechError
from avatarbot.media.types import Phoneme
from avatarbot.tts.base import Speech
from avatarbot.tts.voices import Voice

log = logging.getLogger(__name__)

# edge-tts gives a word's offset and duration in the service's ticks of 100 ns.
TICKS_PER_SECOND = 10_000_000


def edge_rate(rate: float) -> str:
    """edge-tts wants speed as a signed percentage change: 1.25 -> "+25%", 0.8 -> "-20%"."""
    return f"{round((rate - 1.0) * 100):+d}%"


class EdgeEngine:
    name = "edge"

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s

    async def synthesize(self, text: str, voice: Voice, rate: float = 1.0) -> Speech:
        """MP3 audio (24 kHz mono) of `text` in `voice.edge`, with phoneme timings from its words."""
        communicate = edge_tts.Communicate(text, voice.edge, rate=edge_rate(rate), boundary="WordBoundary")
        audio = bytearray()
        words: list[tuple[str, float, float]] = []
        try:
            async with asyncio.timeout(self.timeout_s):
                async for chunk in communicate.stream():
                    if chunk["type"] == "audio":
                        audio += chunk["data"]
                    elif chunk["type"] == "WordBoundary":
                        words.append(word_timing(chunk))
        except TimeoutError:
            raise SpeechError(
                messages.SPEECH_FAILED, detail=f"edge-tts gave no answer within {self.timeout_s:g} s"
            ) from None
        except Exception as error:
            # A remote service fails in many shapes (DNS, refused, TLS, HTTP 403, protocol surprises);
            # for us they all mean the same thing: no speech from it right now.
            raise SpeechError(
                messages.SPEECH_FAILED, detail=f"edge-tts failed: {type(error).__name__}: {error}"
            ) from error
        return Speech(bytes(audio), await asyncio.to_thread(phonemes_for_words, words, voice))


def word_timing(chunk: dict) -> tuple[str, float, float]:
    """(text, start, end) in seconds from an edge-tts WordBoundary chunk."""
    offset, duration = chunk["offset"], chunk["duration"]
    return chunk["text"], offset / TICKS_PER_SECOND, (offset + duration) / TICKS_PER_SECOND


def phonemes_for_words(words: list[tuple[str, float, float]], voice: Voice) -> tuple[Phoneme, ...]:
    """Each word's phonemes in the voice's language (espeak-ng), placed inside the word's span.
    Without libespeak-ng the speech still goes out, with no timings (the lite engine then reads
    the lips from the sound)."""
    from avatarbot.tts.phonemes import phonemes_in_words

    try:
        return phonemes_in_words(words, voice.espeak)
    except (OSError, ValueError) as error:
        log.warning("no phoneme timings for edge-tts speech (voice %s): %s", voice.espeak, error)
        return ()
