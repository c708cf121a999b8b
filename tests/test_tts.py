"""Text to speech with the real engines: espeak-ng runs for real, and edge-tts is pointed at local
TCP peers that stall or refuse, the two ways a dead service looks from here."""

from __future__ import annotations

import array
import io
import logging
import re
import socket
import subprocess
import threading
import time
import wave

import edge_tts.communicate
import pytest

from avatarbot import messages
from avatarbot.errors import EmptyTextError, SpeechError, TextTooLongError, UnknownVoiceError
from avatarbot.settings import LimitsSettings, Settings, TTSSettings
from avatarbot.tts import (
    clean_text,
    find_voice,
    list_voices,
    search_voices,
    speak,
    speak_async,
)

EDGE_TIMEOUT_S = 0.5
# A stalled call must come back soon after EDGE_TIMEOUT_S. The bound stays below edge-tts's own
# 10 s connect timeout (`connect_timeout=10` in Communicate), so only our timeout can meet it.
RETURN_BOUND_S = 8.0
SENTENCE = "Hello there, this is a short test of the offline voice."
ARABIC = "مرحبا بكم في عالم الصور المتحركة"
HEBREW = "שלום, מה שלומך היום?"


def make_settings(engine: str = "offline", max_text_chars: int = 500, default_voice: str = "en-female") -> Settings:
    return Settings(
        tts=TTSSettings(engine=engine, edge_timeout_s=EDGE_TIMEOUT_S, default_voice=default_voice),
        limits=LimitsSettings(max_text_chars=max_text_chars),
    )


def decode_wav(data: bytes) -> tuple[float, float]:
    """(seconds, RMS level 0..1) of a 16-bit mono WAV, read with the standard library only."""
    with wave.open(io.BytesIO(data)) as wav:
        assert wav.getnchannels() == 1 and wav.getsampwidth() == 2
        frames = wav.readframes(wav.getnframes())
        seconds = wav.getnframes() / wav.getframerate()
    samples = array.array("h", frames)
    assert len(samples) > 0
    rms = (sum(s * s for s in samples) / len(samples)) ** 0.5 / 32768
    return seconds, rms


# --- pointing edge-tts at local peers ----------------------------------------------------------
@pytest.fixture
def edge_at(monkeypatch):
    """Make edge-tts connect to 127.0.0.1:<port> instead of Microsoft's service.

    edge-tts 7.x builds its websocket address from the module-level name `WSS_URL`, which
    edge_tts/communicate.py imports from edge_tts/constants.py (`from .constants import WSS_URL`)
    and uses as f"{WSS_URL}&ConnectionId=...". So the name to patch is the copy in
    `edge_tts.communicate`. Its aiohttp session has trust_env=True, so proxy variables are cleared.
    """
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "WS_PROXY", "WSS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)

    def point(port: int) -> None:
        monkeypatch.setattr(edge_tts.communicate, "WSS_URL", f"wss://127.0.0.1:{port}/edge/v1?TrustedClientToken=test")

    return point


class SilentPeer:
    """A TCP server that accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.accepted.append(connection)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for connection in self.accepted:
            connection.close()
        self.listener.close()


@pytest.fixture
def silent_peer():
    peer = SilentPeer()
    yield peer
    peer.close()


@pytest.fixture
def refusing_port() -> int:
    """A port nobody listens on: connecting to it is refused at once."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


def fallback_warnings(caplog) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and record.name.startswith("avatarbot.tts")
    ]


# --- offline engine ----------------------------------------------------------------------------
def test_offline_speaks_a_sentence_as_a_valid_non_silent_wav():
    data = speak(SENTENCE, "en-female", make_settings("offline")).data

    seconds, rms = decode_wav(data)
    assert 1.5 < seconds < 10, seconds  # ten words at 175 words a minute: about 3-4 s
    assert rms > 0.01, rms


def test_faster_rate_gives_shorter_speech():
    settings = make_settings("offline")
    slow, _ = decode_wav(speak(SENTENCE, "en-male", settings, rate=0.5).data)
    fast, _ = decode_wav(speak(SENTENCE, "en-male", settings, rate=2.0).data)
    assert fast < slow * 0.6, (fast, slow)


def test_rate_outside_the_range_is_refused():
    with pytest.raises(ValueError):
        speak(SENTENCE, None, make_settings("offline"), rate=5.0)


def test_text_starting_with_a_dash_is_spoken_not_taken_as_an_option():
    seconds, rms = decode_wav(speak("-v xx --help me", "en", make_settings("offline")).data)
    assert seconds > 0.5 and rms > 0.01


@pytest.mark.parametrize(("text", "voice"), [(ARABIC, "ar-male"), (HEBREW, "he-female")])
def test_right_to_left_text_is_spoken(text, voice):
    # Clients wrap RTL words in bidi marks; they must go and the words must stay.
    marked = f"\u200f\u202b{text}\u202c\u200e"
    assert clean_text(marked, 500) == text

    seconds, rms = decode_wav(speak(marked, voice, make_settings("offline")).data)
    assert seconds > 1.0 and rms > 0.01


def test_offline_speech_decodes_with_the_media_loader():
    audio_module = pytest.importorskip("avatarbot.media.audio")
    settings = make_settings("offline")

    audio = audio_module.load_audio(speak(SENTENCE, "fr-male", settings).data, settings.limits)

    assert 1.5 < audio.duration < 10
    assert float(abs(audio.samples).max()) > 0.05


@pytest.fixture
def no_libespeak(monkeypatch):
    """This process as it would be without libespeak-ng: the library names lead nowhere and the
    already loaded library is forgotten for the test."""
    from avatarbot.tts import phonemes

    monkeypatch.setattr(phonemes, "LIBRARY_NAMES", ("avatarbot-no-such-espeak", "libavatarbot-no-such-espeak.so.1"))
    monkeypatch.setattr(phonemes, "_library", None)


def test_missing_espeak_is_a_speech_error(no_libespeak):
    with pytest.raises(SpeechError) as caught:
        speak(SENTENCE, None, make_settings("offline"))
    assert caught.value.user_message == messages.SPEECH_FAILED
    assert "libespeak-ng is not installed" in caught.value.detail


def test_offline_mode_never_contacts_edge(edge_at, silent_peer):
    edge_at(silent_peer.port)

    data = speak(SENTENCE, None, make_settings("offline")).data

    assert data[:4] == b"RIFF"
    assert silent_peer.accepted == []


# --- fallback from edge-tts --------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_auto_falls_back_when_edge_stalls(edge_at, silent_peer, caplog):
    edge_at(silent_peer.port)

    started = time.monotonic()
    data = speak(SENTENCE, "en-female", make_settings("auto")).data
    elapsed = time.monotonic() - started

    assert silent_peer.accepted, "edge-tts never reached the stalled peer"
    assert elapsed < RETURN_BOUND_S
    seconds, rms = decode_wav(data)  # espeak-ng's WAV, not edge-tts's MP3
    assert seconds > 1.5 and rms > 0.01
    [warning] = fallback_warnings(caplog)
    assert "edge-tts" in warning and f"within {EDGE_TIMEOUT_S:g} s" in warning


async def test_auto_falls_back_when_edge_is_refused(edge_at, refusing_port, caplog):
    edge_at(refusing_port)

    started = time.monotonic()
    data = (await speak_async(SENTENCE, "de-male", make_settings("auto"))).data
    elapsed = time.monotonic() - started

    assert elapsed < RETURN_BOUND_S
    seconds, rms = decode_wav(data)
    assert seconds > 1.5 and rms > 0.01
    [warning] = fallback_warnings(caplog)
    assert "edge-tts" in warning and str(refusing_port) in warning


@pytest.mark.timeout(60)
async def test_edge_mode_raises_when_edge_stalls(edge_at, silent_peer, caplog):
    edge_at(silent_peer.port)

    started = time.monotonic()
    with pytest.raises(SpeechError) as caught:
        await speak_async(SENTENCE, None, make_settings("edge"))

    assert time.monotonic() - started < RETURN_BOUND_S
    assert silent_peer.accepted
    assert caught.value.user_message == messages.SPEECH_FAILED
    assert fallback_warnings(caplog) == []


def test_edge_mode_raises_when_edge_is_refused(edge_at, refusing_port):
    edge_at(refusing_port)

    with pytest.raises(SpeechError) as caught:
        speak(SENTENCE, None, make_settings("edge"))
    assert caught.value.user_message == messages.SPEECH_FAILED
    assert str(refusing_port) in caught.value.detail


def test_auto_with_neither_engine_is_a_speech_error(edge_at, refusing_port, no_libespeak):
    edge_at(refusing_port)

    with pytest.raises(SpeechError) as caught:
        speak(SENTENCE, None, make_settings("auto"))
    assert caught.value.user_message == messages.SPEECH_FAILED


async def test_sync_speak_refuses_to_block_a_running_loop():
    with pytest.raises(RuntimeError, match="speak_async"):
        speak(SENTENCE, None, make_settings("offline"))


# --- text rules --------------------------------------------------------------------------------
def test_whitespace_is_collapsed_and_invisible_characters_removed():
    assert clean_text("  Hello,\n\n\tworld\u200b!\ufeff  ", 500) == "Hello, world!"
    assert clean_text("Hi \u2066there\u2069 \u200d you", 500) == "Hi there you"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\t ",
        "\u200b\u200c\u200d\u200e\u200f\ufeff",
        "\u202a\u202e\u2066\u2069",
        "😀 🎉!!",
        "... ?!",
    ],
)
def test_nothing_speakable_is_empty_text(text):
    with pytest.raises(EmptyTextError) as caught:
        speak(text, None, make_settings("offline"))
    assert caught.value.user_message == messages.EMPTY_TEXT


def test_text_over_the_limit_is_refused_with_its_length():
    with pytest.raises(TextTooLongError) as caught:
        speak("a" * 21, None, make_settings("offline", max_text_chars=20))
    assert caught.value.user_message == messages.text_too_long(21, 20)


def test_invisible_characters_do_not_count_towards_the_limit():
    at_limit = "a" * 20
    assert clean_text("\u200b".join(at_limit) + "\ufeff" * 30, 20) == at_limit


# --- voice catalog -----------------------------------------------------------------------------
def test_voice_lookup_exact_case_insensitive_and_by_language():
    assert find_voice("en-female").edge == "en-US-AriaNeural"
    assert find_voice("  EN-Female ").name == "en-female"
    assert find_voice("de_male").edge == "de-DE-ConradNeural"
    assert find_voice("en").name == "en-female"
    assert find_voice("EN-GB").name == "en-gb-female"
    assert find_voice("pt-br").name == "pt-br-female"


def test_unknown_voice_is_refused_with_suggestions():
    with pytest.raises(UnknownVoiceError) as caught:
        find_voice("en-robot")
    english = ["en-female", "en-male", "en-gb-female", "en-gb-male", "en-au-female"]
    assert caught.value.user_message == messages.unknown_voice("en-robot", english)

    with pytest.raises(UnknownVoiceError) as caught:
        find_voice("klingon")
    assert "en-female" in caught.value.user_message


def test_unknown_voice_through_speak_and_the_default_voice():
    with pytest.raises(UnknownVoiceError):
        speak(SENTENCE, "xx-female", make_settings("offline"))
    with pytest.raises(UnknownVoiceError):
        speak(SENTENCE, None, make_settings("offline", default_voice="nope"))


def test_search_voices_by_name_prefix_and_language():
    assert [voice.name for voice in search_voices("de")] == ["de-female", "de-male"]
    assert [voice.name for voice in search_voices("Germ")] == ["de-female", "de-male"]
    assert {voice.name for voice in search_voices("en-gb")} == {"en-gb-female", "en-gb-male"}
    assert len(search_voices("")) == len(list_voices())
    assert search_voices("zz") == []


def test_catalog_names_and_edge_voices_are_well_formed():
    voices = list_voices()
    assert 20 <= len(voices) <= 40
    names = [voice.name for voice in voices]
    assert len(set(names)) == len(names)
    for voice in voices:
        assert re.fullmatch(r"[a-z]{2}(-[a-z]{2})?-(female|male)", voice.name), voice.name
        assert re.fullmatch(r"[a-z]{2}-[A-Z]{2}-[A-Za-z]+Neural", voice.edge), voice.edge
        assert voice.edge.lower().startswith(voice.name.split("-")[0] + "-"), voice
        assert find_voice(voice.name) is voice


def test_every_catalog_voice_exists_in_the_installed_espeak_ng():
    languages = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True, check=True).stdout
    installed = {line.split()[1] for line in languages.splitlines()[1:]}
    variants = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    for voice in list_voices():
        language, _, variant = voice.espeak.partition("+")
        assert language in installed, voice
        if variant:
            assert f"!v/{variant}" in variants, voice


# --- phoneme timings ----------------------------------------------------------------------------


def test_espeak_reports_when_each_phoneme_is_heard():
    """libespeak-ng's phoneme events, checked against the sound itself: the lips' phonemes come
    in the text's order, the timings tile the audio, and the silence of the final "p" closure
    sits where its timing says."""
    import numpy as np

    from avatarbot.tts.phonemes import speak_with_phonemes

    audio = speak_with_phonemes("Bob made a map")
    phonemes = audio.phonemes
    assert [p.symbol for p in phonemes if p.symbol[0] in "pbm"] == ["b", "b", "m", "m", "p"]
    starts = [p.start for p in phonemes]
    assert starts == sorted(starts) and all(a.end == b.start for a, b in zip(phonemes, phonemes[1:], strict=False))
    assert 0 <= phonemes[0].start < 0.1 and abs(phonemes[-1].end - audio.duration) < 0.05

    def rms(start: float, end: float) -> float:
        clip = audio.samples[int(start * audio.sample_rate) : int(end * audio.sample_rate)]
        return float(np.sqrt(np.mean(clip**2)))

    p = next(p for p in phonemes if p.symbol == "p")
    vowel = phonemes[phonemes.index(p) - 1]
    assert rms(p.start + 0.01, p.start + 0.04) < 0.3 * rms(vowel.start, vowel.end)


def test_phoneme_timings_follow_the_speaking_rate():
    from avatarbot.tts.phonemes import speak_with_phonemes

    normal, fast = speak_with_phonemes("Bob made a map", rate=1.0), speak_with_phonemes("Bob made a map", rate=1.8)
    assert fast.duration < 0.8 * normal.duration
    assert [p.symbol for p in fast.phonemes] == [p.symbol for p in normal.phonemes]
    assert fast.phonemes[-1].end < 0.8 * normal.phonemes[-1].end


def test_unknown_espeak_voice_for_phonemes_is_refused():
    from avatarbot.tts.phonemes import speak_with_phonemes

    with pytest.raises(ValueError):
        speak_with_phonemes("hello", voice="no-such-voice")


def test_offline_speech_carries_its_phoneme_timings_through_decoding():
    settings = make_settings("offline")
    speech = speak("Bob made a map", "en-male", settings)
    assert [p.symbol for p in speech.phonemes if p.symbol[0] in "pbm"] == ["b", "b", "m", "m", "p"]

    audio = speech.decode(settings.limits)  # 16 kHz, loudness-normalised: the times stay
    assert audio.sample_rate == 16_000 and audio.phonemes == speech.phonemes
    assert audio.phonemes[-1].end == pytest.approx(audio.duration, abs=0.05)


# What edge-tts 7.x yields for "Bob made a map, Pam." with boundary="WordBoundary" (offsets and
# durations in 100 ns ticks), written by hand: words with gaps between them and a comma.
EDGE_WORDS = [
    {"type": "WordBoundary", "offset": 1_000_000, "duration": 3_000_000, "text": "Bob"},
    {"type": "WordBoundary", "offset": 4_500_000, "duration": 2_500_000, "text": "made"},
    {"type": "WordBoundary", "offset": 7_000_000, "duration": 500_000, "text": "a"},
    {"type": "WordBoundary", "offset": 7_500_000, "duration": 3_500_000, "text": "map"},
    {"type": "WordBoundary", "offset": 11_000_000, "duration": 1_000_000, "text": ","},
    {"type": "WordBoundary", "offset": 14_000_000, "duration": 4_000_000, "text": "Pam"},
]


def test_edge_word_boundaries_become_phoneme_timings_inside_each_word():
    from avatarbot.tts.edge import phonemes_for_words, word_timing

    words = [word_timing(chunk) for chunk in EDGE_WORDS]
    assert words[0] == ("Bob", 0.1, 0.4) and words[-1] == ("Pam", 1.4, 1.8)

    phonemes = phonemes_for_words(words, find_voice("en-male"))

    assert [p.symbol for p in phonemes if p.symbol[0] in "pbm"] == ["b", "b", "m", "m", "p", "p", "m"]
    assert not any(p.symbol.startswith("_") for p in phonemes)  # espeak-ng's pauses around a word
    for text, start, end in words:
        inside = [p for p in phonemes if start <= p.start < end]
        if text == ",":
            assert inside == []  # nothing is said for it
            continue
        # The word's phonemes tile its span exactly, in order.
        assert inside[0].start == pytest.approx(start) and inside[-1].end == pytest.approx(end)
        assert all(a.end == pytest.approx(b.start) for a, b in zip(inside, inside[1:], strict=False))
    # Between words (1.2 s to 1.4 s) nothing is placed: the lips rest or close there.
    assert not [p for p in phonemes if p.end > 1.2 + 1e-9 and p.start < 1.4 - 1e-9]


def test_edge_word_phonemes_follow_the_voices_language():
    from avatarbot.tts.edge import phonemes_for_words

    english = phonemes_for_words([("Paris", 0.0, 0.5)], find_voice("en-male"))
    french = phonemes_for_words([("Paris", 0.0, 0.5)], find_voice("fr-male"))
    assert [p.symbol for p in english] != [p.symbol for p in french]
    assert english[0].symbol == french[0].symbol == "p"


def test_edge_speech_without_libespeak_goes_out_without_timings(no_libespeak, caplog):
    from avatarbot.tts.edge import phonemes_for_words, word_timing

    assert phonemes_for_words([word_timing(chunk) for chunk in EDGE_WORDS], find_voice("en-male")) == ()
    assert any("no phoneme timings" in message for message in fallback_warnings(caplog))


def test_every_catalog_voice_speaks_through_libespeak_ng():
    """The offline engine speaks through the library, which knows some voices ("en-gb",
    "fr-fr") only by language, as the espeak-ng command line does."""
    from avatarbot.tts.phonemes import speak_with_phonemes

    for voice in list_voices():
        spoken = speak_with_phonemes("ok", voice.espeak)
        assert spoken.duration > 0.1 and spoken.phonemes, voice
