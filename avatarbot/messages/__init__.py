"""Every sentence a user can read, per language, so wording and translation have one home.

Catalogues: `en.py` (the source of truth), `zh_hans.py` (Simplified Chinese), `es.py` (Spanish),
each a dict `CATALOGUE` from message key to a `str.format` template with named fields. Another
language is one more module listed in `_MODULES`; `tests/test_messages.py` checks that it has
every key with the same placeholders.

Why our own ~150 lines and not gettext or Babel: gettext needs .po files compiled to .mo at
install (or a build step), keys would be English sentences (a reworded sentence orphans every
translation), and its plural forms cover only one number per message; Babel brings CLDR data we
would use for three number formats. Named `str.format` templates need nothing at install, carry
their placeholders visibly, and the few per-language rules (durations, ordinals, plurals, lists)
are the format specs below.

The API (for the bots, the flow and the web page alike):

    lang = messages.resolve("zh-CN")          # -> "zh-Hans"; any tag, None or junk -> a shipped one
    messages.text("file_too_big", lang, limit_bytes=20_000_000)
    messages.localize(error.user_message, lang)   # an English `Text` (constant, error) in `lang`
    messages.for_error(error, lang)               # an AvatarbotError's sentence in `lang`
    messages.from_record(code, params, lang, fallback)   # a job's stored failure in `lang`
    messages.pick(config.language, user_tag, server_tag)  # the first that names a language
    messages.from_accept_language("zh-CN,zh;q=0.9,en;q=0.8")  # -> "zh-Hans" (a web page's header)
    messages.web_texts(lang), messages.web_quality_labels(lang)   # the web page's labels

A surface hands the person's tag to the flow as `Requester.language`; the flow fixes the job's
language from it (`service/replies.py`), and everything said about the job follows.

`text` never raises: a missing key or language falls back to English, a missing or malformed
placeholder to the English template or, at worst, the key itself (and a warning in the log).
Texts are plain (no Markdown); each adapter escapes them for its platform.

Module constants (`messages.CANCELLED`) and the small functions below (`messages.file_too_big`)
are the English `Text` of a key: a `str` that remembers its key and parameters, so an error
raised with it can be said again in any language (`localize`, `for_error`).

Locale resolution: a BCP 47 / POSIX tag (`zh-CN`, `zh_Hans`, `zh-hans`, `es-419`, `pt-BR`) is
matched on its language, and for Chinese on its script: every Chinese tag, Traditional ones
(`zh-TW`, `zh-HK`, `zh-Hant`) included, reads the Simplified catalogue until a zh-Hant one ships
(a Traditional reader reads Simplified far better than English). Anything else unshipped: English.
"""

from __future__ import annotations

import importlib
import logging
import string
from collections.abc import Iterable

from avatarbot.vocab import Stage

log = logging.getLogger(__name__)

ENGLISH = "en"
# Shipped languages: canonical tag -> catalogue module.
_MODULES = {"en": "en", "zh-Hans": "zh_hans", "es": "es"}
LANGUAGES: tuple[str, ...] = tuple(_MODULES)
CATALOGUES: dict[str, dict[str, str]] = {
    lang: importlib.import_module(f"avatarbot.messages.{module}").CATALOGUE for lang, module in _MODULES.items()
}
# Each language's name in itself, for settings and help.
LANGUAGE_NAMES = {"en": "English", "zh-Hans": "简体中文", "es": "Español"}


# --- locale resolution ---------------------------------------------------------------------------
def _match(tag: str | None) -> str | None:
    """The shipped language a tag names, or None."""
    if not tag or not isinstance(tag, str):
        return None
    parts = tag.strip().replace("_", "-").lower().split("-")
    if parts[0] == "zh":
        return "zh-Hans"
    for lang in LANGUAGES:
        if lang.lower() == parts[0]:
            return lang
    return None


def resolve(tag: str | None) -> str:
    """The shipped language to answer a tag in (English when none fits)."""
    return _match(tag) or ENGLISH


def pick(*tags: str | None) -> str:
    """The first tag that names a shipped language: e.g. the chat's override, the user's
    language, the server's preferred locale; English when none does."""
    for tag in tags:
        lang = _match(tag)
        if lang:
            return lang
    return ENGLISH


def from_accept_language(header: str | None) -> str:
    """A browser's `Accept-Language` header ("zh-CN,zh;q=0.9,en;q=0.8"): the shipped language it
    prefers most (by q, then order); English when none fits."""
    ranked = []
    for position, entry in enumerate((header or "").split(",")):
        tag, _, quality = entry.strip().partition(";q=")
        try:
            weight = float(quality) if quality else 1.0
        except ValueError:
            weight = 0.0
        ranked.append((-weight, position, tag))
    return pick(*(tag for weight, _, tag in sorted(ranked) if weight < 0))


def known(tag: str | None) -> str | None:
    """A shipped language's canonical tag for an admin's setting, or None (not shipped)."""
    return _match(tag)


# --- formatting ----------------------------------------------------------------------------------
class _Formatter(string.Formatter):
    """str.format with the catalogue's specs, said in one language."""

    def __init__(self, lang: str):
        self.lang = lang

    def format_field(self, value, spec: str):
        if spec == "duration":
            return _duration(float(value), self.lang)
        if spec == "size":
            return _size(int(value))
        if spec == "megapixels":
            return f"{float(value) / 1e6:.0f}"
        if spec == "ordinal":
            return _ordinal(int(value), self.lang)
        if spec == "list":
            return ("、" if self.lang == "zh-Hans" else ", ").join(str(item) for item in value)
        if spec == "onoff":
            return text("word_on" if value else "word_off", self.lang)
        if spec.startswith("plural:"):
            one, _, other = spec[len("plural:") :].partition("|")
            return one if value == 1 else other  # en and es: one for 1, other otherwise
        return super().format_field(value, spec)


_UNITS = {
    "en": ("second", "seconds", "minute", "minutes"),
    "es": ("segundo", "segundos", "minuto", "minutos"),
    "zh-Hans": ("秒", "秒", "分钟", "分钟"),
}


def _duration(seconds: float, lang: str) -> str:
    """Whole minutes from two minutes up (the quota wording rounds to them), seconds below."""
    one_s, many_s, one_m, many_m = _UNITS.get(lang, _UNITS[ENGLISH])
    value, (one, many) = (seconds / 60, (one_m, many_m)) if seconds >= 120 else (seconds, (one_s, many_s))
    return f"{value:g} {one if value == 1 else many}"


def _size(n_bytes: int) -> str:
    """In the unit the limit was set in: Discord's are binary (10 MiB), Telegram's decimal (20 MB)."""
    if n_bytes % (1024 * 1024) == 0:
        return f"{n_bytes // (1024 * 1024)} MiB"
    return f"{n_bytes / 1_000_000:.3g} MB"


def _ordinal(n: int, lang: str) -> str:
    if lang == "es":
        return f"{n}.º"
    if lang == "zh-Hans":
        return f"第{n}"
    if 10 <= n % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def placeholders(template: str) -> set[str]:
    """The named fields of a template (what every language's version must share)."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


# --- lookup --------------------------------------------------------------------------------------
class Text(str):
    """An English sentence that remembers its key and parameters, to be said again in another
    language (`localize`). Everywhere else it is the plain `str` it always was."""

    key: str
    params: dict

    def __new__(cls, value: str, key: str, params: dict):
        self = super().__new__(cls, value)
        self.key = key
        self.params = params
        return self

    def __reduce__(self):  # pickle and copy keep the key (str's own would call __new__ with the value only)
        return (Text, (str(self), self.key, self.params))


def text(key: str, lang: str = ENGLISH, /, **params) -> Text:
    """The sentence `key` in `lang` (falling back to English), its fields filled from `params`."""
    lang = lang if lang in CATALOGUES else resolve(lang)
    for candidate in dict.fromkeys((lang, ENGLISH)):
        template = CATALOGUES[candidate].get(key)
        if template is None:
            continue
        try:
            return Text(_Formatter(candidate).vformat(template, (), params), key, params)
        except (KeyError, IndexError, ValueError, TypeError) as error:
            log.warning("message %r in %s could not be filled (%r); trying English", key, candidate, error)
    log.warning("message %r has no usable text; showing its key", key)
    return Text(key, key, params)


def localize(sentence: str | None, lang: str) -> str | None:
    """A sentence built here (a `Text`) said in `lang`; other strings (user text, a stored note)
    are found back by their English words when they are a parameterless catalogue sentence."""
    if sentence is None:
        return None
    if isinstance(sentence, Text):
        return text(sentence.key, lang, **sentence.params)
    key = _ENGLISH_KEYS.get(sentence)
    return text(key, lang) if key else sentence


# Parameterless English sentences by their words: notes stored on a job record are plain strings.
_ENGLISH_KEYS = {template: key for key, template in CATALOGUES[ENGLISH].items() if not placeholders(template)}


def for_error(error, lang: str) -> str:
    """An `AvatarbotError`'s sentence in `lang`."""
    return from_record(error.code, error.params, lang, error.user_message)


def from_record(code: str | None, params: dict | None, lang: str, fallback: str | None = None) -> str:
    """A failure stored as `error_code` + `error_params` (jobs, delivery records) said in `lang`.
    `params["key"]`, when there, names the sentence (one code can have several); else the code does."""
    params = dict(params or {})
    key = params.pop("key", None) or code
    if key and key in CATALOGUES[ENGLISH] and placeholders(CATALOGUES[ENGLISH][key]) <= set(params):
        return text(key, lang, **params)
    if fallback:
        return localize(fallback, lang)
    return text("render_failed", lang)


def telegram_commands(lang: str) -> dict[str, str]:
    """The command menu Telegram shows (setMyCommands), command -> description."""
    return {name: text(f"command_{name}", lang) for name in TELEGRAM_COMMAND_NAMES}


TELEGRAM_COMMAND_NAMES = ("animate", "help", "voices", "status", "cancel", "settings")


def __getattr__(name: str) -> Text:
    """`messages.CANCELLED` and friends: the English `Text` of key `cancelled`."""
    key = name.lower()
    if name.isupper() and key in CATALOGUES[ENGLISH] and not placeholders(CATALOGUES[ENGLISH][key]):
        return text(key)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- the English texts with parameters (keyword names are the templates' fields) ----------------
def file_too_big(limit_bytes: int) -> Text:
    return text("file_too_big", limit_bytes=limit_bytes)


def image_too_large(pixels: int, limit_pixels: int) -> Text:
    return text("image_too_large", pixels=pixels, limit_pixels=limit_pixels)


def image_too_small(width: int, height: int, min_side: int) -> Text:
    return text("image_too_small", width=width, height=height, min_side=min_side)


def audio_too_long(seconds: float, limit_seconds: float) -> Text:
    return text("audio_too_long", seconds=round(seconds), limit_seconds=limit_seconds)


def audio_too_short(seconds: float, min_seconds: float) -> Text:
    return text("audio_too_short", seconds=seconds, min_seconds=min_seconds)


def text_too_long(length: int, limit: int) -> Text:
    return text("text_too_long", length=length, limit=limit)


def unknown_voice(name: str, examples: list[str]) -> Text:
    return text("unknown_voice", name=name, examples=list(examples))


def render_timed_out(limit_s: float) -> Text:
    return text("render_timeout", limit_s=limit_s)


def quota_concurrent(limit: int) -> Text:
    return text("quota_concurrent", limit=limit)


def quota_user_hourly(limit: int, retry_after_s: float) -> Text:
    return text("quota_user_hourly", limit=limit, retry_after_s=_round_wait(retry_after_s))


def quota_server_hourly(limit: int, retry_after_s: float) -> Text:
    return text("quota_server_hourly", limit=limit, retry_after_s=_round_wait(retry_after_s))


def _round_wait(seconds: float) -> float:
    """Whole seconds under two minutes, whole minutes above (the wording uses minutes there)."""
    if seconds < 120:
        return float(max(1, round(seconds)))
    return float(60 * max(2, -(-int(seconds) // 60)))


def clip_too_big(limit_bytes: int) -> Text:
    return text("clip_too_big", limit_bytes=limit_bytes)


def discord_channel_not_allowed(channels: list[str]) -> Text:
    return text("channel_not_allowed", channels=list(channels))


# --- texts said in a given language --------------------------------------------------------------
def already_asked(link: str | None, lang: str = ENGLISH) -> Text:
    """A repeat while the first request is on its way, pointing at its status message."""
    return text("already_asked_link", lang, link=link) if link else text("already_asked", lang)


def ordinal(n: int, lang: str = ENGLISH) -> str:
    return _ordinal(n, lang)


def queued(position: int | None, lang: str = ENGLISH) -> Text:
    if not position or position <= 1:
        return text("queued_next", lang)
    return text("queued", lang, position=position)


_STAGE_KEYS = {Stage.PREPARING: "stage_preparing", Stage.RENDERING: "stage_rendering", Stage.ENCODING: "stage_encoding"}


def progress(
    stage: str, step: int, total: int, eta_s: float | None = None, width: int = 10, lang: str = ENGLISH
) -> str:
    """e.g. 'Rendering ▰▰▰▰▱▱▱▱▱▱ 40% · about 2 minutes left'."""
    fraction = 0.0 if total <= 0 else min(1.0, max(0.0, step / total))
    filled = round(fraction * width)
    name = text(_STAGE_KEYS[stage], lang) if stage in _STAGE_KEYS else stage.capitalize()
    line = f"{name} {'▰' * filled}{'▱' * (width - filled)} {fraction:.0%}"
    if eta_s is not None and eta_s > 0:
        line += " · " + text("progress_eta", lang, eta_s=round(eta_s) if eta_s < 90 else 60 * round(eta_s / 60))
    return line


def telegram_help(max_audio_seconds: float, max_text_chars: int, max_download_bytes: int, lang: str = ENGLISH) -> Text:
    return text(
        "telegram_help", lang, max_audio_seconds=max_audio_seconds, max_text_chars=max_text_chars,
        max_download_bytes=max_download_bytes,
    )  # fmt: skip


def settings_usage(lang: str = ENGLISH) -> Text:
    return text("telegram_settings_usage", lang, languages="|".join(("auto", *LANGUAGES)))


def language_label(language: str | None, lang: str = ENGLISH) -> str:
    """A chat's language setting as shown in its settings: a language's own name, or 'auto'."""
    return LANGUAGE_NAMES.get(language or "", "") or text("language_auto", lang)


def telegram_settings(
    voice: str, quality: str, caption_requests: bool, clip_captions: bool, language: str | None = None,
    lang: str = ENGLISH,
) -> str:  # fmt: skip
    summary = text(
        "telegram_settings", lang, voice=voice, quality=quality, caption_requests=caption_requests,
        clip_captions=clip_captions, language=language_label(language, lang),
    )  # fmt: skip
    return f"{summary}\n{settings_usage(lang)}"


def discord_status(who: str, line: str, lang: str = ENGLISH) -> str:
    """A job's status line, its outcome, or its failure, addressed to the requester."""
    return text("discord_status", lang, who=who, line=line)


def discord_clip_caption(who: str, notes: Iterable[str], lang: str = ENGLISH) -> str:
    return " ".join([text("discord_clip_caption", lang, who=who), *(localize(note, lang) for note in notes)])


def discord_settings(
    channels: list[str], voice: str, quality: str, per_hour: int | None, language: str | None = None,
    lang: str = ENGLISH,
) -> str:  # fmt: skip
    where = ", ".join(channels) if channels else text("discord_every_channel", lang)
    limit = text("discord_per_hour", lang, per_hour=per_hour) if per_hour else text("discord_default_per_hour", lang)
    return text(
        "discord_settings", lang, channels=where, voice=voice, quality=quality, limit=limit,
        language=language_label(language, lang),
    )  # fmt: skip


def discord_help(
    message_content_intent: bool, max_audio_seconds: float, max_text_chars: int, lang: str = ENGLISH
) -> Text:
    key = "discord_help" if message_content_intent else "discord_help_mention"
    return text(
        key, lang, max_audio_seconds=max_audio_seconds, max_text_chars=max_text_chars,
        animate_command=text("name_animate", lang), settings_command=text("name_settings", lang),
    )  # fmt: skip


def web_texts(lang: str = ENGLISH) -> dict[str, str]:
    """Every label of the local web page in `lang`, by the page's own names ("title", "submit", …)."""
    return {key[len("web_") :]: text(key, lang) for key in _WEB_KEYS}


def web_quality_labels(lang: str = ENGLISH) -> dict[str, str]:
    """The web page's quality choices, quality name -> label."""
    return {name: text(f"web_quality_{name}", lang) for name in ("fast", "standard", "high")}


_WEB_KEYS = tuple(key for key in CATALOGUES[ENGLISH] if key.startswith("web_") and not key.startswith("web_quality_"))
# The English page (what `avatarbot.web` reads until it asks for the reader's language).
WEB_TEXTS = web_texts()
WEB_QUALITY_LABELS = web_quality_labels()


# Not words: the motion presets' names are option values (the same in every language).
DISCORD_MOTION_CHOICES = {"still": 0.0, "calm": 0.5, "normal": 1.0, "lively": 1.6}
