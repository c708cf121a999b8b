"""The message catalogues: every shipped language complete, locale tags resolved, texts that
never raise, and failures said again in another language from their code and numbers."""

from __future__ import annotations

import pickle
import string

import pytest

from avatarbot import messages
from avatarbot.errors import AudioTooLongError, FileTooBigError, QuotaError
from avatarbot.tts.voices import default_voice_for, find_voice

ENGLISH = messages.CATALOGUES["en"]
OTHERS = [lang for lang in messages.LANGUAGES if lang != "en"]

# A sample value per placeholder name, of the type its spec formats.
SAMPLES = {"examples": ["en-female", "zh-female"], "channels": ["<#1>", "<#2>"], "languages": ["en", "es"]}


def _fields(template: str) -> dict[str, str]:
    """placeholder -> its spec (the last one when a name is used twice)."""
    return {name: spec for _, name, spec, _ in string.Formatter().parse(template) if name}


def _sample(name: str, spec: str):
    if name in SAMPLES:
        return SAMPLES[name]
    if spec in ("duration", "size", "megapixels", "ordinal", ".1f", "g") or spec.startswith("plural:"):
        return 3
    if spec == "onoff":
        return True
    return f"<{name}>"


@pytest.mark.parametrize("lang", OTHERS)
def test_every_key_exists_in_every_language_with_the_same_placeholders(lang):
    catalogue = messages.CATALOGUES[lang]
    missing, extra = sorted(set(ENGLISH) - set(catalogue)), sorted(set(catalogue) - set(ENGLISH))
    assert not missing and not extra, f"missing: {missing}; extra: {extra}"
    for key, template in ENGLISH.items():
        assert messages.placeholders(catalogue[key]) == messages.placeholders(template), key


@pytest.mark.parametrize("lang", messages.LANGUAGES)
def test_every_text_fills_without_falling_back(lang, caplog):
    for key in messages.CATALOGUES[lang]:
        params = {name: _sample(name, spec) for name, spec in _fields(ENGLISH[key]).items()}
        said = messages.text(key, lang, **params)
        assert said and "{" not in said and said != key, key
        if lang != "en" and key.startswith(("describe_", "name_")):
            assert len(said) <= 100  # Discord's limit on a command or option description
        if key.startswith("name_"):
            assert said == said.lower() and " " not in said and len(said) <= 32  # Discord's name rule
    assert not [r for r in caplog.records if r.name == "avatarbot.messages"], "a template failed to fill"


@pytest.mark.parametrize(
    "tag, expected",
    [
        ("zh-CN", "zh-Hans"), ("zh-hans", "zh-Hans"), ("zh_Hans", "zh-Hans"), ("zh", "zh-Hans"),
        ("zh-TW", "zh-Hans"), ("zh-Hant-HK", "zh-Hans"),  # no zh-Hant catalogue: Simplified reads better than English
        ("es-ES", "es"), ("es-419", "es"), ("ES", "es"), ("en-GB", "en"), ("en-US", "en"),
        ("pt-BR", "en"), ("ja", "en"), ("", "en"), (None, "en"), ("-", "en"), ("💥", "en"),
    ],
)  # fmt: skip
def test_locale_tags_resolve_to_a_shipped_language(tag, expected):
    assert messages.resolve(tag) == expected


def test_pick_takes_the_first_tag_that_names_a_shipped_language():
    assert messages.pick(None, "pt-BR", "zh-CN") == "zh-Hans"  # chat override unset, user unshipped, server zh
    assert messages.pick("es", "zh-CN") == "es"  # the chat's override wins
    assert messages.pick(None, None) == "en"


def test_a_browsers_accept_language_header_picks_its_most_preferred_shipped_language():
    assert messages.from_accept_language("zh-CN,zh;q=0.9,en;q=0.8") == "zh-Hans"
    assert messages.from_accept_language("pt-BR,pt;q=0.9,es;q=0.8,en;q=0.7") == "es"
    assert messages.from_accept_language("en;q=0.5, zh-TW") == "zh-Hans"
    assert messages.from_accept_language("fr;q=0") == "en"  # q=0: not acceptable
    assert messages.from_accept_language("zh;q=oops, es") == "es"
    assert messages.from_accept_language(None) == messages.from_accept_language("") == "en"


def test_missing_keys_and_languages_fall_back_and_never_raise(caplog):
    assert messages.text("cancelled", "fr") == "Cancelled."  # unshipped language: English
    assert messages.text("no_such_key", "zh-Hans") == "no_such_key"  # a bug, said visibly, logged
    # A missing placeholder: English is tried, then the key; nothing raises on a user path.
    assert messages.text("file_too_big", "zh-Hans") == "file_too_big"
    assert "could not be filled" in caplog.text


def test_numbers_are_said_the_way_each_language_says_them():
    assert messages.queued(3) == "Queued — 3rd in line."
    assert messages.queued(11) == "Queued — 11th in line."
    assert messages.queued(3, "zh-Hans") == "排队中，你排在第 3 位。"  # never "3rd"
    assert messages.queued(3, "es") == "En cola: 3.º en la fila."
    assert messages.text("quota_concurrent", "en", limit=1).startswith("You already have 1 clip in")
    assert messages.text("quota_concurrent", "en", limit=2).startswith("You already have 2 clips in")
    assert messages.text("quota_concurrent", "es", limit=1).startswith("Ya tienes 1 clip en")
    assert messages.text("quota_concurrent", "es", limit=2).startswith("Ya tienes 2 clips en")
    assert messages.localize(messages.quota_user_hourly(5, 400), "zh-Hans").endswith("请 7 分钟后再试。")
    assert messages.localize(messages.audio_too_long(61.4, 60), "es") == (
        "Esa grabación dura 61 segundos; el límite es 60 segundos. Envía una más corta."
    )
    assert messages.progress("rendering", 4, 10, 150, lang="zh-Hans") == "生成中 ▰▰▰▰▱▱▱▱▱▱ 40% · 还需约 2 分钟"
    assert messages.localize(messages.file_too_big(10 * 1024 * 1024), "zh-Hans") == "文件太大了，上限是 10 MiB。"
    assert messages.localize(messages.unknown_voice("x", ["a", "b"]), "zh-Hans").endswith("可以试试：a、b。")


def test_an_error_is_said_again_in_any_language_from_its_code_and_params():
    error = FileTooBigError(messages.file_too_big(20_000_000), detail="20000001 bytes")
    assert error.params == {"limit_bytes": 20_000_000, "key": "file_too_big"}
    assert messages.for_error(error, "zh-Hans") == "文件太大了，上限是 20 MB。"
    # One code, several sentences: the key travels in the params (as a job record stores them).
    quota = QuotaError(messages.quota_server_hourly(30, 90), retry_after_s=90)
    assert messages.from_record(quota.code, quota.params, "es").startswith("Este chat ha hecho 30 clips")
    # A record from before (no params): its English sentence found back when it has no numbers,
    # else said as stored.
    assert messages.from_record("cancelled", {}, "zh-Hans", "Cancelled.") == "已取消。"
    old = str(AudioTooLongError(messages.audio_too_long(90, 60)).user_message)
    assert messages.from_record("audio_too_long", {}, "zh-Hans", old) == old
    assert messages.from_record(None, None, "es") == messages.text("render_failed", "es")


def test_english_constants_and_functions_are_the_catalogue_texts():
    assert messages.CANCELLED == ENGLISH["cancelled"]
    assert messages.localize(messages.CANCELLED, "zh-Hans") == "已取消。"
    assert messages.localize("a user's own words", "zh-Hans") == "a user's own words"
    copied = pickle.loads(pickle.dumps(messages.file_too_big(20_000_000)))
    assert (copied, copied.key, copied.params) == (
        "That file is too big. The limit is 20 MB.",
        "file_too_big",
        {"limit_bytes": 20_000_000},
    )
    with pytest.raises(AttributeError):
        messages.NO_SUCH_MESSAGE  # noqa: B018


def test_the_default_tts_voice_follows_the_reply_language():
    assert default_voice_for("zh-Hans", "en-female") == "zh-female"
    assert default_voice_for("es", "en-female") == "es-female"
    assert default_voice_for("en", "en-gb-male") == "en-gb-male"  # the operator's choice stands
    assert default_voice_for("es", "es-mx-female") == "es-mx-female"
    for lang in messages.LANGUAGES:
        find_voice(default_voice_for(lang, "en-female"))  # a real voice
