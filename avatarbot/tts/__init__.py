"""Text to speech: edge-tts's neural voices online, espeak-ng offline, a voice catalog users pick from.

Which entry point to use:
- `speak(text, voice_name, settings)` from plain synchronous code: the CLI, Celery tasks.
- `await speak_async(text, voice_name, settings)` from asyncio code: the bots. It never blocks the
  event loop, and `speak` refuses to run inside one.
Both return `Speech`: an encoded audio file (MP3 from edge-tts, WAV from espeak-ng) and when each
phoneme is heard in it. `Speech.decode(limits)` gives the checked `Audio` with `Audio.phonemes`
set, which the lite engine shapes the lips from.

`find_voice`, `list_voices` and `search_voices` serve /voices and autocomplete; `clean_text` lets a
caller refuse bad text early, before anything is downloaded.
"""

from avatarbot.tts.base import MAX_RATE, MIN_RATE, Speech, SpeechEngine
from avatarbot.tts.speech import speak, speak_async
from avatarbot.tts.text import clean_text
from avatarbot.tts.voices import Voice, find_voice, list_voices, search_voices

__all__ = [
    "MAX_RATE",
    "MIN_RATE",
    "Speech",
    "SpeechEngine",
    "Voice",
    "clean_text",
    "find_voice",
    "list_voices",
    "search_voices",
    "speak",
    "speak_async",
]
