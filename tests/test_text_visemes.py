"""Text requests bring the TTS's own phoneme timings all the way to the render: through the real
request flow, a real Redis and the real Celery worker, into the lite engine, whose lips then
close on every p/b/m of the text. Recordings arrive without timings (the spectral classifier
reads their lips from the sound).

The lips are measured on the worker's finished MP4 by dlib's 68-point tracker, which lite does
not use (bench/lite_quality.py, whose definitions are shared with tests/test_lite_visemes.py).
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import wait_for_job

from avatarbot.avatar.lite.visemes import viseme_of
from avatarbot.service.flow import RenderRequest
from avatarbot.tasks.inputs import read_phonemes
from avatarbot.tts.phonemes import espeak_available
from bench import lite_quality as quality

REPO = quality.REPO
pytestmark = pytest.mark.skipif(not espeak_available(), reason="libespeak-ng is not installed (Debian: espeak-ng)")

TEXT = "Bob and Pam made a map. Maybe, but please keep it simple!"


class _Witness:
    """The worker's real lite engine, noting the audio each render is handed."""

    def __init__(self, inner):
        self.inner = inner
        self.name = getattr(inner, "name", "lite")
        self.received = []

    def render(self, photo, audio, options, progress=None, should_cancel=None):
        self.received.append(audio)
        return self.inner.render(photo, audio, options, progress=progress, should_cancel=should_cancel)


@pytest.fixture
def witness(base_settings):
    from avatarbot.tasks import render_job

    original = render_job.engine_for("lite", base_settings)
    watching = _Witness(original)
    render_job.install_engine("lite", watching)
    yield watching
    render_job.install_engine("lite", original)


def _bilabials(phonemes) -> list[str]:
    return [p.symbol for p in phonemes if viseme_of(p.symbol) == "closed"]


def _frames(mp4: bytes) -> list[np.ndarray]:
    import av

    with av.open(io.BytesIO(mp4)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


async def test_text_request_reaches_the_engine_with_the_tts_phoneme_timings(
    render_worker, witness, flow, requester, reply_to, photo_bytes
):
    job = await flow.submit(requester, reply_to, RenderRequest(photo=photo_bytes, text=TEXT))
    assert "phonemes" in job.inputs
    done = await asyncio.to_thread(wait_for_job, flow.store, job.id, {"done", "failed"}, 120.0)
    assert done.state == "done", done.error

    stored = read_phonemes(flow.blobs.get(job.inputs["phonemes"]))
    [audio] = [a for a in witness.received if a.phonemes == stored]
    # Bob, Pam, made, map, Maybe, but, please, keep, simple: the text's p/b/m in order.
    assert _bilabials(audio.phonemes) == ["b", "b", "p", "m", "m", "m", "p", "m", "b", "b", "p", "p", "m", "p"]
    starts = [p.start for p in audio.phonemes]
    assert starts == sorted(starts)
    assert audio.phonemes[-1].end == pytest.approx(audio.duration, abs=0.1)

    # The lips in the clip the worker made: shut within two frames of every p, b and m.
    _assert_lips_shut_on_bilabials(flow.blobs.get(done.clip_key), photo_bytes, audio.phonemes)


async def test_a_recording_arrives_without_phoneme_timings(
    render_worker, witness, flow, requester, reply_to, photo_bytes, voice_bytes
):
    job = await flow.submit(requester, reply_to, RenderRequest(photo=photo_bytes, audio=voice_bytes, text=TEXT))
    assert "phonemes" not in job.inputs
    done = await asyncio.to_thread(wait_for_job, flow.store, job.id, {"done", "failed"}, 120.0)
    assert done.state == "done", done.error
    assert witness.received and all(audio.phonemes == () for audio in witness.received)


def test_cli_animate_text_uses_the_phoneme_timings(photo_bytes, tmp_path):
    """`avatarbot animate --text`, run as a user would (offline voice, lite engine)."""
    from avatarbot.settings import Settings
    from avatarbot.tts import speak

    photo = tmp_path / "me.jpg"
    photo.write_bytes(photo_bytes)
    out = tmp_path / "out.mp4"
    env = dict(os.environ, HF_HUB_OFFLINE="1", AVATARBOT_TTS__ENGINE="offline")
    command = [sys.executable, "-m", "avatarbot", "animate", "--engine", "lite", "--photo", str(photo)]
    command += ["--text", TEXT, "-o", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr

    # The same speech spoken here gives the same phonemes (espeak-ng's timing varies by a few ms).
    phonemes = speak(TEXT, None, Settings(tts={"engine": "offline"})).phonemes
    _assert_lips_shut_on_bilabials(out.read_bytes(), photo_bytes, phonemes)


def _assert_lips_shut_on_bilabials(mp4: bytes, photo_bytes: bytes, phonemes) -> None:
    frames = _frames(mp4)
    measured = quality.measure(frames, _face_box(photo_bytes, frames[0].shape))
    on_labials = quality.closed_on_bilabials(measured, quality.bilabial_frames(phonemes))
    assert measured.gap.max() > 0.06  # the tracker does see the mouth open when it is
    assert (on_labials <= quality.CLOSED_IOD).all(), f"open on p/b/m: {np.round(on_labials, 3)}"


def _face_box(photo_bytes: bytes, frame_shape) -> tuple[float, float, float, float]:
    """The main face's box in the clip's frames (the clip is the photo scaled to its size)."""
    from avatarbot.media.images import load_photo
    from avatarbot.settings import LimitsSettings

    photo = load_photo(photo_bytes, LimitsSettings())
    scale_x, scale_y = frame_shape[1] / photo.width, frame_shape[0] / photo.height
    x0, y0, x1, y1 = photo.main_face.box
    return x0 * scale_x, y0 * scale_y, x1 * scale_x, y1 * scale_y


async def test_again_keeps_the_phoneme_timings_of_a_text_request(
    render_worker, witness, flow, requester, reply_to, photo_bytes
):
    first = await flow.submit(requester, reply_to, RenderRequest(photo=photo_bytes, text="Maybe, Bob."))
    await asyncio.to_thread(wait_for_job, flow.store, first.id, {"done", "failed"}, 120.0)
    again = await flow.again(first.id, requester)
    assert again.id != first.id and again.inputs == first.inputs
    done = await asyncio.to_thread(wait_for_job, flow.store, again.id, {"done", "failed"}, 120.0)
    assert done.state == "done", done.error
    stored = read_phonemes(flow.blobs.get(first.inputs["phonemes"]))
    assert len(witness.received) == 2 and all(audio.phonemes == stored for audio in witness.received)


async def test_the_same_text_twice_is_a_repeat_though_speech_is_not_bit_for_bit_repeatable(
    render_worker, witness, flow, requester, reply_to, photo_bytes
):
    """espeak-ng's pitch flutter runs on from one synthesis to the next, so the same line spoken
    twice differs in its samples (and its phoneme timings by a few ms): a repeat is recognised by
    its voice and text, not by the speech made from them."""
    request = RenderRequest(photo=photo_bytes, text="Maybe, Bob.", voice_name="en-male")
    first = await flow.submit(requester, reply_to, request)
    repeat = await flow.submit(requester, reply_to, request)
    assert repeat.id == first.id and repeat.duplicate
    other_voice = await flow.submit(requester, reply_to, RenderRequest(photo=photo_bytes, text="Maybe, Bob."))
    other_text = await flow.submit(requester, reply_to, RenderRequest(photo=photo_bytes, text="Maybe, Pam."))
    assert len({first.id, other_voice.id, other_text.id}) == 3 and not (other_voice.duplicate or other_text.duplicate)
    for job in (first, other_voice, other_text):
        await asyncio.to_thread(wait_for_job, flow.store, job.id, {"done", "failed"}, 120.0)
