"""Audio: every container users send, decoded to checked 16 kHz mono, and each bad recording
refused with its own error."""

from __future__ import annotations

import tempfile
from pathlib import Path

import media_samples as samples
import numpy as np
import pytest

from avatarbot import messages
from avatarbot.errors import (
    AudioTooLongError,
    AudioTooShortError,
    CorruptAudioError,
    EmptyFileError,
    NoAudioStreamError,
    NotAudioError,
    SilentAudioError,
)
from avatarbot.media import audio as audio_module
from avatarbot.media.audio import PEAK_CEILING, TARGET_DBFS, _block_levels_dbfs, load_audio
from avatarbot.settings import LimitsSettings

LIMITS = LimitsSettings()


@pytest.fixture(scope="module")
def sound_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sounds")


@pytest.fixture(scope="module")
def speech(sound_dir) -> Path:
    return samples.speech_wav(sound_dir / "speech.wav")


@pytest.fixture(scope="module")
def reference(speech) -> np.ndarray:
    """The speech as decoded from the lossless WAV, un-normalised: what every format should match."""
    return load_audio(speech, LIMITS, normalize=False).samples


def envelope(samples_: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    block = sample_rate // 50  # 20 ms
    count = len(samples_) // block
    return np.sqrt(np.mean(samples_[: count * block].reshape(count, block) ** 2, axis=1))


def gated_level_dbfs(samples_: np.ndarray) -> float:
    levels = _block_levels_dbfs(samples_, 16000)
    active = levels[levels > levels.max() - 30]
    return float(10 * np.log10(np.mean(10 ** (active / 10))))


FORMATS = {
    "ogg-opus voice note": lambda speech, d: samples.voice_note(speech, d / "voice.ogg"),
    "mp3": lambda speech, d: samples.transcode(speech, d / "s.mp3", "-c:a", "libmp3lame", "-b:a", "64k"),
    "m4a-aac": lambda speech, d: samples.transcode(speech, d / "s.m4a", "-c:a", "aac", "-b:a", "64k"),
    "wav": lambda speech, d: speech,
    "flac": lambda speech, d: samples.transcode(speech, d / "s.flac", "-c:a", "flac"),
    "mp4 soundtrack": lambda speech, d: samples.video_with_audio(speech, d / "clip.mp4"),
}


@pytest.mark.parametrize("as_bytes", [True, False], ids=["bytes", "path"])
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_each_format_decodes_to_the_same_speech(fmt, as_bytes, speech, sound_dir, reference):
    path = FORMATS[fmt](speech, sound_dir)
    audio = load_audio(path.read_bytes() if as_bytes else path, LIMITS)
    assert audio.sample_rate == 16000 and audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.duration == pytest.approx(len(reference) / 16000, abs=0.1)
    # The same words: the loudness envelope follows the original's syllable by syllable.
    n = min(len(envelope(audio.samples)), len(envelope(reference)))
    correlation = np.corrcoef(envelope(audio.samples)[:n], envelope(reference)[:n])[0, 1]
    assert correlation > 0.9, correlation
    assert gated_level_dbfs(audio.samples) == pytest.approx(TARGET_DBFS, abs=1.5)
    assert np.abs(audio.samples).max() <= PEAK_CEILING + 1e-4
    assert audio.source_format


def test_voice_note_is_really_a_chat_voice_note(speech, sound_dir):
    import av

    path = samples.voice_note(speech, sound_dir / "voice-check.ogg")
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert container.format.name == "ogg" and stream.codec_context.name == "opus"
        assert stream.codec_context.sample_rate == 48000 and stream.codec_context.channels == 1
    assert load_audio(path, LIMITS).source_format == "ogg/opus"


def test_other_sample_rates(speech):
    audio = load_audio(speech, LIMITS, sample_rate=48000)
    assert audio.sample_rate == 48000
    assert len(audio.samples) == pytest.approx(3 * len(load_audio(speech, LIMITS).samples), abs=48)


def test_normalisation_lifts_quiet_and_tames_loud(sound_dir):
    quiet = samples.tone(sound_dir / "quiet.wav", 2.0, "-af", "volume=-25dB")
    raw = load_audio(quiet, LIMITS, normalize=False)
    # ffmpeg's sine peaks at 1/8 (-18 dBFS); its RMS is 3 dB under the peak; then -25 dB.
    assert gated_level_dbfs(raw.samples) == pytest.approx(-18.1 - 3.0 - 25, abs=0.5)
    assert gated_level_dbfs(load_audio(quiet, LIMITS).samples) == pytest.approx(TARGET_DBFS, abs=1)

    loud = samples.tone(sound_dir / "loud.wav", 2.0, "-af", "volume=+18dB")  # peaks at 0 dBFS
    audio = load_audio(loud, LIMITS)
    assert np.abs(audio.samples).max() <= PEAK_CEILING + 1e-4


def test_pauses_do_not_drag_the_level_down(sound_dir):
    # 1 s of tone then 3 s of silence: the tone is what gets set to the target level.
    path = sound_dir / "tone-then-pause.wav"
    samples.ffmpeg(
        "-f", "lavfi", "-i", "sine=frequency=300:duration=1", "-af", "apad=pad_dur=3,volume=-25dB", str(path)
    )
    audio = load_audio(path, LIMITS)
    assert audio.duration == pytest.approx(4.0, abs=0.05)
    assert gated_level_dbfs(audio.samples[:16000]) == pytest.approx(TARGET_DBFS, abs=1)


# --- bad recordings ------------------------------------------------------------------------------


def test_zero_bytes_and_an_empty_file(tmp_path):
    with pytest.raises(EmptyFileError) as caught:
        load_audio(b"", LIMITS)
    assert caught.value.user_message == messages.EMPTY_FILE
    empty = tmp_path / "empty.ogg"
    empty.touch()
    with pytest.raises(EmptyFileError):
        load_audio(empty, LIMITS)


def test_video_without_sound(sound_dir):
    with pytest.raises(NoAudioStreamError) as caught:
        load_audio(samples.video_without_audio(sound_dir / "silent-film.mp4").read_bytes(), LIMITS)
    assert caught.value.user_message == messages.NO_AUDIO_STREAM


@pytest.mark.parametrize("keep", [0, 60, 400], ids=["all-noise", "ogg-page-header-then-noise", "headers-then-noise"])
def test_corrupt_ogg(keep, speech, sound_dir):
    valid = samples.voice_note(speech, sound_dir / "to-corrupt.ogg").read_bytes()
    with pytest.raises(CorruptAudioError) as caught:
        load_audio(samples.corrupt(valid, keep=keep), LIMITS)
    assert caught.value.user_message == messages.CORRUPT_AUDIO
    assert caught.value.detail


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP"])
def test_a_picture_is_not_audio(fmt):
    with pytest.raises(NotAudioError) as caught:
        load_audio(samples.encode(samples.two_colour_image(), fmt), LIMITS)
    assert caught.value.user_message == messages.NOT_AUDIO


def test_a_text_file_is_not_audio():
    with pytest.raises(CorruptAudioError):
        load_audio(b"This is my voice message, honest.\n" * 30, LIMITS)


def test_ten_minute_recording_is_refused_from_its_header(sound_dir, monkeypatch):
    path = samples.long_recording(sound_dir / "ten-minutes.ogg", 600)
    assert path.stat().st_size < 1_000_000
    # Refused by the declared duration: the decoder never runs.
    monkeypatch.setattr("avatarbot.media.audio._decode", lambda *a, **k: pytest.fail("decoded a refused file"))
    with pytest.raises(AudioTooLongError) as caught:
        load_audio(path.read_bytes(), LIMITS)
    assert caught.value.user_message == messages.audio_too_long(600, LIMITS.max_audio_seconds)
    assert "10 minutes" in caught.value.user_message and "60 seconds" in caught.value.user_message


def test_a_header_that_understates_the_length_is_caught_by_the_decode_cap(sound_dir, monkeypatch):
    # Two OGG streams back to back ("chained"): the declared duration is read from the last page,
    # i.e. the 1 s second part, while the file plays 21 s.
    long_part = samples.tone(sound_dir / "part-20s.ogg", 20.0, "-c:a", "libopus")
    short_part = samples.tone(sound_dir / "part-1s.ogg", 1.0, "-c:a", "libopus")
    liar = long_part.read_bytes() + short_part.read_bytes()
    limits = LimitsSettings(max_audio_seconds=5)
    decoded_lengths = []

    def capped_decode(*args, **kwargs):
        samples_ = real_decode(*args, **kwargs)
        decoded_lengths.append(len(samples_) / 16000)
        return samples_

    real_decode = audio_module._decode
    monkeypatch.setattr(audio_module, "_decode", capped_decode)
    with pytest.raises(AudioTooLongError) as caught:
        load_audio(liar, limits)
    assert "declared" in caught.value.detail
    # The decoder stopped shortly past the limit instead of decoding all 21 s.
    assert decoded_lengths and decoded_lengths[0] <= limits.max_audio_seconds + 1.01


def test_too_short(sound_dir):
    path = samples.tone(sound_dir / "blip.ogg", 0.1, "-c:a", "libopus")
    with pytest.raises(AudioTooShortError) as caught:
        load_audio(path, LIMITS)
    assert caught.value.user_message == messages.audio_too_short(0.1, LIMITS.min_audio_seconds)


def test_pure_silence(sound_dir):
    with pytest.raises(SilentAudioError) as caught:
        load_audio(samples.silence(sound_dir / "silence.ogg"), LIMITS)
    assert caught.value.user_message == messages.SILENT_AUDIO


def test_no_temp_files_left_behind(speech, sound_dir, tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    load_audio(speech.read_bytes(), LIMITS)
    with pytest.raises(CorruptAudioError):
        load_audio(b"garbage" * 100, LIMITS)
    with pytest.raises(NoAudioStreamError):
        load_audio(samples.video_without_audio(sound_dir / "film2.mp4").read_bytes(), LIMITS)
    assert list(scratch.iterdir()) == []
