"""The finished clip: encoded for chats, in sync with its audio, fitted to upload limits, with a
thumbnail Telegram accepts. Every check reads the real file back (PyAV)."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from avatarbot import messages
from avatarbot.avatar.engine import Clip, frame_count_for
from avatarbot.errors import EncodeError, RenderCancelled
from avatarbot.media import ffmpeg as ffmpeg_module
from avatarbot.media.audio import load_audio
from avatarbot.media.types import Audio
from avatarbot.media.video import (
    THUMBNAIL_MAX_BYTES,
    THUMBNAIL_MAX_SIDE,
    encode_mp4,
    fit_to_size,
    make_thumbnail,
    probe,
)
from avatarbot.settings import LimitsSettings

SAMPLE_RATE = 16000


def tone(seconds: float) -> Audio:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return Audio(samples=(0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sample_rate=SAMPLE_RATE)


def colour_frames(count: int, width: int, height: int, log: list | None = None):
    """Lazily made frames, each a solid colour that changes with the frame number."""
    for i in range(count):
        if log is not None:
            log.append(("frame", i))
        frame = np.empty((height, width, 3), dtype=np.uint8)
        frame[:] = (i * 7 % 256, 128, 255 - i * 7 % 256)
        yield frame


def noise_frames(count: int, width: int, height: int, seed: int = 0):
    """Frames that compress badly, to make a file worth shrinking."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    for i in range(count):
        yield np.roll(base, 5 * i, axis=1)


def assert_chat_ready(info, audio_seconds: float):
    kinds = sorted(s.kind for s in info.streams)
    assert kinds == ["audio", "video"]
    assert info.video_codec == "h264" and info.pix_fmt == "yuv420p" and info.audio_codec == "aac"
    assert info.width % 2 == 0 and info.height % 2 == 0
    assert abs(info.duration - audio_seconds) < 0.1, (info.duration, audio_seconds)


def test_encode_streams_frames_and_matches_the_audio(tmp_path):
    audio = tone(2.3)
    count = frame_count_for(audio.duration)
    events: list = []
    clip = Clip(frames=colour_frames(count, 96, 64, events), frame_count=count, width=96, height=64)
    out = encode_mp4(
        clip, audio, tmp_path / "clip.mp4", progress=lambda done, total: events.append(("progress", done, total))
    )

    info = probe(out)
    assert_chat_ready(info, audio.duration)
    assert (info.width, info.height) == (96, 64) and info.fps == 25
    # Streamed: progress was reported while frames were still being made, not after a list().
    first_progress = next(i for i, e in enumerate(events) if e[0] == "progress")
    assert first_progress < events.index(("frame", count - 1))
    assert events[-1] == ("progress", count, count)
    # +faststart: the index ('moov') comes before the media data ('mdat').
    head = out.read_bytes()[:4096]
    assert 0 <= head.find(b"moov") < head.find(b"mdat") or b"mdat" not in head
    # The pictures are the frames we sent, in order.
    with av.open(str(out)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == count
    for index in (0, count // 2, count - 1):
        expected = np.array([index * 7 % 256, 128, 255 - index * 7 % 256])
        assert np.abs(decoded[index][32, 48].astype(int) - expected).max() < 12
    assert not list(tmp_path.glob("*.part"))
    # The sound is our 220 Hz tone.
    sound = load_audio(out, LimitsSettings(), normalize=False)
    spectrum = np.abs(np.fft.rfft(sound.samples))
    assert np.argmax(spectrum) * sound.sample_rate / len(sound.samples) == pytest.approx(220, abs=2)


def test_odd_sizes_become_even(tmp_path):
    audio = tone(1.0)
    clip = Clip(frames=colour_frames(25, 101, 77), frame_count=25, width=101, height=77)
    info = probe(encode_mp4(clip, audio, tmp_path / "odd.mp4"))
    assert (info.width, info.height) == (100, 76)


@pytest.mark.parametrize("frames", [10, 80], ids=["too-few-frames", "too-many-frames"])
def test_video_always_ends_with_the_audio(frames, tmp_path):
    audio = tone(1.5)
    clip = Clip(frames=colour_frames(frames, 64, 64), frame_count=frames, width=64, height=64)
    info = probe(encode_mp4(clip, audio, tmp_path / "sync.mp4"))
    assert_chat_ready(info, audio.duration)
    video = next(s for s in info.streams if s.kind == "video")
    assert abs(video.duration - audio.duration) < 0.05


def test_wrong_frame_size_is_an_encode_error(tmp_path):
    frames = [np.zeros((64, 64, 3), np.uint8), np.zeros((32, 32, 3), np.uint8)]
    out = tmp_path / "bad.mp4"
    with pytest.raises(EncodeError) as caught:
        encode_mp4(Clip(frames=iter(frames), frame_count=2, width=64, height=64), tone(1.0), out)
    assert caught.value.user_message == messages.ENCODE_FAILED and "frame 1" in caught.value.detail
    assert list(tmp_path.iterdir()) == []


def test_ffmpeg_failure_carries_its_stderr(tmp_path):
    clip = Clip(frames=colour_frames(25, 64, 64), frame_count=25, width=64, height=64)
    with pytest.raises(EncodeError) as caught:
        encode_mp4(clip, tone(1.0), tmp_path / "clip.mp4", preset="no-such-preset")
    assert "preset" in caught.value.detail.lower()
    assert list(tmp_path.iterdir()) == []


def test_cancel_from_the_engine_passes_through_and_leaves_nothing(tmp_path):
    def frames():
        yield np.zeros((64, 64, 3), np.uint8)
        raise RenderCancelled(messages.CANCELLED)

    with pytest.raises(RenderCancelled):
        encode_mp4(Clip(frames=frames(), frame_count=25, width=64, height=64), tone(1.0), tmp_path / "c.mp4")
    assert list(tmp_path.iterdir()) == []


# --- fitting to an upload limit ------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_clip(tmp_path_factory) -> Path:
    audio = tone(3.0)
    count = frame_count_for(audio.duration)
    clip = Clip(frames=noise_frames(count, 320, 240), frame_count=count, width=320, height=240)
    return encode_mp4(clip, audio, tmp_path_factory.mktemp("fit") / "big.mp4", crf=18)


def test_a_clip_that_fits_is_returned_as_is(big_clip, tmp_path):
    assert fit_to_size(big_clip, big_clip.stat().st_size, tmp_path / "unused.mp4") == big_clip
    assert not (tmp_path / "unused.mp4").exists()


@pytest.mark.parametrize("budget", [400_000, 30_000])
def test_fit_to_size_ends_within_the_budget(big_clip, budget, tmp_path):
    assert big_clip.stat().st_size > 2 * budget  # really needs shrinking
    out = fit_to_size(big_clip, budget, tmp_path / "fitted.mp4")
    assert out == tmp_path / "fitted.mp4"
    info = probe(out)
    assert info.size_bytes <= budget
    assert_chat_ready(info, 3.0)
    if budget == 30_000:  # too few bits for 320x240: the picture was made smaller too
        assert info.width < 320 and info.width / info.height == pytest.approx(320 / 240, rel=0.05)


def test_an_impossible_budget_is_an_encode_error(big_clip, tmp_path):
    with pytest.raises(EncodeError) as caught:
        fit_to_size(big_clip, 5_000, tmp_path / "tiny.mp4")
    assert caught.value.user_message == messages.clip_too_big(5_000)
    assert not (tmp_path / "tiny.mp4").exists()


# --- thumbnail and probe -------------------------------------------------------------------------


@pytest.mark.parametrize("size, expected", [((1280, 720), (320, 180)), ((96, 64), (96, 64))])
def test_thumbnail_meets_telegrams_rule(size, expected, tmp_path):
    width, height = size
    clip = Clip(frames=noise_frames(5, width, height), frame_count=5, width=width, height=height)
    video = encode_mp4(clip, tone(0.2), tmp_path / "v.mp4")
    thumb = make_thumbnail(video, tmp_path / "thumb.jpg")
    assert thumb.stat().st_size <= THUMBNAIL_MAX_BYTES
    with Image.open(thumb) as image:
        assert image.format == "JPEG" and image.size == expected
        assert max(image.size) <= THUMBNAIL_MAX_SIDE


def test_thumbnail_respects_a_tighter_byte_limit(big_clip, tmp_path):
    thumb = make_thumbnail(big_clip, tmp_path / "t.jpg", max_bytes=15_000)
    assert thumb.stat().st_size <= 15_000


def test_probe_of_a_non_video_is_an_encode_error(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 50)
    with pytest.raises(EncodeError):
        probe(junk)


def test_ffmpeg_falls_back_to_the_bundled_binary(monkeypatch):
    import imageio_ffmpeg

    monkeypatch.setattr(shutil, "which", lambda name: None)
    ffmpeg_module.ffmpeg_exe.cache_clear()
    try:
        assert ffmpeg_module.ffmpeg_exe() == imageio_ffmpeg.get_ffmpeg_exe()
    finally:
        ffmpeg_module.ffmpeg_exe.cache_clear()
    assert Path(ffmpeg_module.ffmpeg_exe()).name.startswith("ffmpeg")


def test_encoding_leaks_no_pipes_or_scratch_files(tmp_path, monkeypatch):
    import os
    import tempfile

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    fds_before = len(os.listdir("/proc/self/fd"))
    for preset in ("veryfast", "no-such-preset"):
        clip = Clip(frames=colour_frames(25, 64, 64), frame_count=25, width=64, height=64)
        try:
            encode_mp4(clip, tone(1.0), tmp_path / "clip.mp4", preset=preset)
        except EncodeError:
            pass
    assert len(os.listdir("/proc/self/fd")) == fds_before
    assert list(scratch.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "scratch"]
