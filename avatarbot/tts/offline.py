"""espeak-ng: a robotic but dependable voice that needs no network, used when edge-tts can't answer.

espeak-ng runs in this process through its library, libespeak-ng (Debian/Ubuntu package
`espeak-ng`; `tts/phonemes.py` holds the binding), because only the library reports when each
phoneme is heard. The library cannot be interrupted; it speaks a 500-character message in well
under a second, so the time limit here only keeps a caller from waiting on a hang.
"""

from __future__ import annotations

import asyncio

from avatarbot import messages
from avatarbot.errors import SpeechError
from avatarbot.tts.base import Speech
from avatarbot.tts.voices import Voice

ESPEAK_DEFAULT_WPM = 175  # espeak-ng's own default speed in words per minute (`espeak-ng --help`)
ESPEAK_TIMEOUT_S = 60.0


def espeak_words_per_minute(rate: float) -> int:
    return round(ESPEAK_DEFAULT_WPM * rate)


class EspeakEngine:
    name = "offline"

    async def synthesize(self, text: str, voice: Voice, rate: float = 1.0) -> Speech:
        """WAV audio (22.05 kHz, 16-bit mono) of `text` in `voice.espeak`, with its phoneme timings."""
        from avatarbot.tasks.inputs import audio_wav
        from avatarbot.tts.phonemes import speak_with_phonemes

        try:
            async with asyncio.timeout(ESPEAK_TIMEOUT_S):
                audio = await asyncio.to_thread(speak_with_phonemes, text, voice.espeak, rate)
        except TimeoutError:
            raise SpeechError(
                messages.SPEECH_FAILED, detail=f"espeak-ng did not finish within {ESPEAK_TIMEOUT_S:g} s"
            ) from None
        except OSError as error:
            raise SpeechError(
                messages.SPEECH_FAILED,
                detail=f"libespeak-ng is not installed (Debian/Ubuntu: apt install espeak-ng): {error}",
            ) from error
        except ValueError as error:
            raise SpeechError(messages.SPEECH_FAILED, detail=f"espeak-ng failed: {error}") from error
        if len(audio.samples) == 0:
            raise SpeechError(messages.SPEECH_FAILED, detail=f"espeak-ng said nothing (voice {voice.espeak})")
        return Speech(audio_wav(audio.samples, audio.sample_rate), audio.phonemes)
