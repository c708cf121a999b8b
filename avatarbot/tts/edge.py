"""Microsoft's neural voices through edge-tts: natural speech, but an online service.

edge-tts 7.x limits only single steps of a request, never the whole of it
(`aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)` in edge_tts/communicate.py):
a peer that accepts the connection and then stalls or trickles holds a user for ten seconds to
minutes (older versions: forever). So every call here runs under `timeout_s`, and every way it can
fail becomes a `SpeechError` that the caller may answer with the offline engine.
"""

from __future__ import annotations

import asyncio

import edge_tts

from avatarbot import messages
from avatarbot.errors import SpeechError
from avatarbot.tts.voices import Voice


def edge_rate(rate: float) -> str:
    """edge-tts wants speed as a signed percentage change: 1.25 -> "+25%", 0.8 -> "-20%"."""
    return f"{round((rate - 1.0) * 100):+d}%"


class EdgeEngine:
    name = "edge"

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s

    async def synthesize(self, text: str, voice: Voice, rate: float = 1.0) -> bytes:
        """MP3 audio (24 kHz mono) of `text` in `voice.edge`."""
        communicate = edge_tts.Communicate(text, voice.edge, rate=edge_rate(rate))
        audio = bytearray()
        try:
            async with asyncio.timeout(self.timeout_s):
                async for chunk in communicate.stream():
                    if chunk["type"] == "audio":
                        audio += chunk["data"]
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
        return bytes(audio)
