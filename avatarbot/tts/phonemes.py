"""Speech from espeak-ng together with when each phoneme starts, so the lite engine can shape the
lips for what is said instead of guessing it from the sound.

The espeak-ng command line reports phonemes (`-x`) but not their times (`--pho` only works with
MBROLA voices), so this talks to the same library, libespeak-ng (Debian package `espeak-ng`,
already needed for offline speech), through ctypes: in synchronous mode the library hands every
chunk of audio to a callback together with its events, and phoneme events carry their position
in the audio. There is no maintained Python binding on PyPI that exposes these events.

Symbols are espeak-ng's own phoneme mnemonics ("p", "m", "i:", "u:", "aI", "@", "_:" for a
pause), which `avatar/lite/visemes.py` maps to mouth shapes.

edge-tts reports only when each word is heard; `phonemes_in_words` fills each word's span with
that word's phonemes as espeak-ng speaks it in the same language, each taking the share of the
span that espeak-ng gives it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

import numpy as np

from avatarbot.media.types import Audio, Phoneme
from avatarbot.tts.offline import espeak_words_per_minute

# From espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED, _EVENT_PHONEME = 0, 7
_PARAMETER_RATE = 1
_PAUSE_PREFIX = "_"
LIBRARY_NAMES = ("espeak-ng", "libespeak-ng.so.1")


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms
        ("sample", ctypes.c_int),  # samples since the start of the text
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))

# The library keeps one global synthesiser: one caller at a time.
_lock = threading.Lock()
_library: tuple | None = None


def espeak_available() -> bool:
    try:
        _load()
    except OSError:
        return False
    return True


def speak_with_phonemes(text: str, voice: str = "en", rate: float = 1.0) -> Audio:
    """`text` spoken by espeak-ng `voice` (an espeak voice name), with `Audio.phonemes` set.
    Raises OSError when libespeak-ng is missing, ValueError for an unknown voice."""
    with _lock:
        library, sample_rate = _load()
        chunks: list[np.ndarray] = []
        starts: list[tuple[str, int]] = []

        def on_audio(wav, count, events) -> int:
            if count > 0:
                chunks.append(np.ctypeslib.as_array(wav, (count,)).copy())
            i = 0
            while events[i].type != _EVENT_LIST_TERMINATED:
                if events[i].type == _EVENT_PHONEME:
                    starts.append((events[i].id.string.decode("utf-8", "replace"), events[i].sample))
                i += 1
            return 0

        callback = _Callback(on_audio)  # kept alive until synthesis ends
        library.espeak_SetSynthCallback(callback)
        _select_voice(library, voice)
        library.espeak_SetParameter(_PARAMETER_RATE, espeak_words_per_minute(rate), 0)
        data = text.encode("utf-8")
        library.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        library.espeak_Synchronize()
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    duration = len(pcm) / sample_rate
    phonemes = tuple(
        Phoneme(symbol, start / sample_rate, (starts[i + 1][1] if i + 1 < len(starts) else len(pcm)) / sample_rate)
        for i, (symbol, start) in enumerate(starts)
        if start / sample_rate < duration
    )
    return Audio(samples=pcm.astype(np.float32) / 32768.0, sample_rate=sample_rate, phonemes=phonemes)


def phonemes_in_words(words: list[tuple[str, float, float]], voice: str = "en") -> tuple[Phoneme, ...]:
    """Phoneme timings for speech whose words are heard at known times: `words` is
    (text, start, end) in seconds. Each word's span is shared among its phonemes (espeak-ng
    `voice`, pauses at its edges dropped) in proportion to how long espeak-ng says each one; a
    word with nothing to say (a lone punctuation mark) adds nothing. Raises like
    `speak_with_phonemes`."""
    placed: list[Phoneme] = []
    for text, start, end in words:
        spoken = _without_edge_pauses(speak_with_phonemes(text, voice).phonemes)
        if not spoken or end <= start:
            continue
        origin, length = spoken[0].start, spoken[-1].end - spoken[0].start
        scale = (end - start) / length if length > 0 else 0.0
        placed += [
            Phoneme(p.symbol, start + (p.start - origin) * scale, start + (p.end - origin) * scale) for p in spoken
        ]
    return tuple(placed)


def _without_edge_pauses(phonemes: tuple[Phoneme, ...]) -> tuple[Phoneme, ...]:
    first = next((i for i, p in enumerate(phonemes) if not p.symbol.startswith(_PAUSE_PREFIX)), len(phonemes))
    last = max((i for i, p in enumerate(phonemes) if not p.symbol.startswith(_PAUSE_PREFIX)), default=-1)
    return phonemes[first : last + 1]


def _select_voice(library, voice: str) -> None:
    """By voice file name ("en-us+f3"), else by language ("en-gb", "fr-fr+f3"), as the espeak-ng
    command line does: those have no voice file of that name."""
    if library.espeak_SetVoiceByName(voice.encode()) == 0:
        return
    wanted = _Voice(languages=voice.encode())
    if (
        library.espeak_SetVoiceByProperties(ctypes.byref(wanted)) != 0
        or _current_language(library) != voice.split("+")[0]
    ):
        # Selecting by language settles for the nearest match ("no-such-voice" finds Norwegian).
        raise ValueError(f"espeak-ng has no voice {voice!r}")


def _current_language(library) -> str:
    """The selected voice's main language; espeak-ng prefixes it with a priority byte."""
    languages = library.espeak_GetCurrentVoice().contents.languages or b""
    return languages[1:].decode("ascii", "replace")


def _load():
    global _library
    if _library is None:
        path = ctypes.util.find_library(LIBRARY_NAMES[0]) or LIBRARY_NAMES[1]
        library = ctypes.CDLL(path)
        library.espeak_Initialize.restype = ctypes.c_int
        sample_rate = library.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INITIALIZE_PHONEME_EVENTS)
        if sample_rate <= 0:
            raise OSError(f"libespeak-ng failed to start (code {sample_rate})")
        library.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        library.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(_Voice)]
        library.espeak_GetCurrentVoice.restype = ctypes.POINTER(_Voice)
        _library = (library, sample_rate)
    return _library
