"""The voices users choose from.

A user picks a short name like "en-female" or "de-male" (`<language>-<gender>`), never an engine's
own voice id. Each name is backed by one edge-tts neural voice and one espeak-ng voice for the same
language, so a chosen voice keeps its language when the offline engine has to stand in.

The first voice listed for a language is what the bare language code means ("en" is "en-female").
"""

from __future__ import annotations

from dataclasses import dataclass

from avatarbot import messages
from avatarbot.errors import UnknownVoiceError

# espeak-ng variant that raises the pitch of a language voice so it sounds female
# (`espeak-ng --voices=variant` lists it as "!v/f3"). Male voices use the language voice as is.
ESPEAK_FEMALE_VARIANT = "+f3"

# Names suggested when a requested voice shares no language with the catalog.
FALLBACK_SUGGESTIONS = ("en-female", "en-male", "de-female", "fr-male", "es-female")
MAX_SUGGESTIONS = 5
# A name echoed back in an error message is cut to this length (it is user input).
MAX_ECHOED_NAME = 40


@dataclass(frozen=True)
class Voice:
    name: str  # what users type, e.g. "en-gb-female"
    language: str  # what /voices shows, e.g. "English (UK)"
    gender: str  # "female" or "male"
    edge: str  # edge-tts ShortName, e.g. "en-GB-SoniaNeural"
    espeak: str  # espeak-ng voice, e.g. "en-gb+f3"

    @property
    def language_code(self) -> str:
        """The part a user may type on its own: "en-gb" for "en-gb-female"."""
        return self.name.rsplit("-", 1)[0]

    @property
    def label(self) -> str:
        return f"{self.name} — {self.language}, {self.gender}"


def _voice(name: str, language: str, edge: str, espeak: str) -> Voice:
    gender = name.rsplit("-", 1)[1]
    variant = ESPEAK_FEMALE_VARIANT if gender == "female" else ""
    return Voice(name, language, gender, edge, espeak + variant)


# edge-tts ShortNames as listed by `edge-tts --list-voices`; espeak-ng voices as listed by
# `espeak-ng --voices` (Debian espeak-ng 1.51). espeak-ng has no Australian or Indian English, so
# those fall back to British English offline.
CATALOG: tuple[Voice, ...] = (
    _voice("en-female", "English (US)", "en-US-AriaNeural", "en-us"),
    _voice("en-male", "English (US)", "en-US-GuyNeural", "en-us"),
    _voice("en-gb-female", "English (UK)", "en-GB-SoniaNeural", "en-gb"),
    _voice("en-gb-male", "English (UK)", "en-GB-RyanNeural", "en-gb"),
    _voice("en-au-female", "English (Australia)", "en-AU-NatashaNeural", "en-gb"),
    _voice("en-in-female", "English (India)", "en-IN-NeerjaNeural", "en-gb"),
    _voice("de-female", "German", "de-DE-KatjaNeural", "de"),
    _voice("de-male", "German", "de-DE-ConradNeural", "de"),
    _voice("fr-female", "French", "fr-FR-DeniseNeural", "fr-fr"),
    _voice("fr-male", "French", "fr-FR-HenriNeural", "fr-fr"),
    _voice("es-female", "Spanish (Spain)", "es-ES-ElviraNeural", "es"),
    _voice("es-male", "Spanish (Spain)", "es-ES-AlvaroNeural", "es"),
    _voice("es-mx-female", "Spanish (Mexico)", "es-MX-DaliaNeural", "es-419"),
    _voice("it-female", "Italian", "it-IT-ElsaNeural", "it"),
    _voice("it-male", "Italian", "it-IT-DiegoNeural", "it"),
    _voice("pt-br-female", "Portuguese (Brazil)", "pt-BR-FranciscaNeural", "pt-br"),
    _voice("pt-br-male", "Portuguese (Brazil)", "pt-BR-AntonioNeural", "pt-br"),
    _voice("pt-female", "Portuguese (Portugal)", "pt-PT-RaquelNeural", "pt"),
    _voice("nl-female", "Dutch", "nl-NL-ColetteNeural", "nl"),
    _voice("pl-female", "Polish", "pl-PL-ZofiaNeural", "pl"),
    _voice("ru-male", "Russian", "ru-RU-DmitryNeural", "ru"),
    _voice("ru-female", "Russian", "ru-RU-SvetlanaNeural", "ru"),
    _voice("uk-female", "Ukrainian", "uk-UA-PolinaNeural", "uk"),
    _voice("tr-female", "Turkish", "tr-TR-EmelNeural", "tr"),
    _voice("sv-female", "Swedish", "sv-SE-SofieNeural", "sv"),
    _voice("ar-male", "Arabic", "ar-SA-HamedNeural", "ar"),
    _voice("ar-female", "Arabic", "ar-SA-ZariyahNeural", "ar"),
    _voice("he-female", "Hebrew", "he-IL-HilaNeural", "he"),
    _voice("hi-female", "Hindi", "hi-IN-SwaraNeural", "hi"),
    _voice("ja-female", "Japanese", "ja-JP-NanamiNeural", "ja"),
    _voice("ja-male", "Japanese", "ja-JP-KeitaNeural", "ja"),
    _voice("ko-female", "Korean", "ko-KR-SunHiNeural", "ko"),
    _voice("zh-female", "Chinese (Mandarin)", "zh-CN-XiaoxiaoNeural", "cmn"),
    _voice("zh-male", "Chinese (Mandarin)", "zh-CN-YunxiNeural", "cmn"),
    _voice("id-female", "Indonesian", "id-ID-GadisNeural", "id"),
    _voice("vi-female", "Vietnamese", "vi-VN-HoaiMyNeural", "vi"),
)

_BY_NAME = {voice.name: voice for voice in CATALOG}
_BY_LANGUAGE: dict[str, Voice] = {}
for _entry in CATALOG:
    _BY_LANGUAGE.setdefault(_entry.language_code, _entry)


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def find_voice(name: str) -> Voice:
    """The voice a user asked for: "en-female", "EN-Female", "en_female" or just "en"."""
    key = _normalise(name)
    voice = _BY_NAME.get(key) or _BY_LANGUAGE.get(key)
    if voice is None:
        shown = name.strip()[:MAX_ECHOED_NAME]
        raise UnknownVoiceError(messages.unknown_voice(shown, _suggestions(key)), detail=f"unknown voice {name!r}")
    return voice


def _suggestions(key: str) -> list[str]:
    """Voices of the language the user seems to want, else a few common ones."""
    language = key.split("-", 1)[0]
    same_language = [voice.name for voice in CATALOG if voice.name.split("-", 1)[0] == language]
    return (same_language or list(FALLBACK_SUGGESTIONS))[:MAX_SUGGESTIONS]


def default_voice_for(language: str, fallback: str) -> str:
    """The voice to speak a reply language's text in when nobody picked one: `fallback` (the
    operator's `tts.default_voice`) when it already speaks that language, else the language's
    first voice ("zh-Hans" -> "zh-female"), else `fallback`."""
    primary = _normalise(language).split("-", 1)[0]
    if _normalise(fallback).split("-", 1)[0] == primary or primary not in _BY_LANGUAGE:
        return fallback
    return _BY_LANGUAGE[primary].name


def list_voices() -> tuple[Voice, ...]:
    """Every voice, in catalog order (for /voices)."""
    return CATALOG


def search_voices(query: str) -> list[Voice]:
    """Voices for autocomplete: names starting with `query` first, then languages containing it.

    "de" finds de-female and de-male; "germ" finds them by their language. An empty query lists
    everything. Callers cut the list to their platform's limit.
    """
    key = _normalise(query)
    by_name = [voice for voice in CATALOG if voice.name.startswith(key)]
    by_language = [voice for voice in CATALOG if key in voice.language.lower() and voice not in by_name]
    return by_name + by_language
