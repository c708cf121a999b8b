"""The lite engine on a real face (scikit-image's astronaut, faces from our detector) and real
speech (espeak-ng), framed by silence so loud and quiet stretches are known.

Regions are measured against the still photo: the mouth must move with the voice and rest in
silence, the background must stay put, the head must move only when motion > 0.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import wave

import numpy as np
import pytest

from avatarbot import errors, messages
from avatarbot.avatar.engine import FPS, RenderOptions, frame_count_for
from avatarbot.avatar.lite import LiteEngine
from avatarbot.avatar.lite.speech import mouth_controls
from avatarbot.media.types import Audio, Photo

SAMPLE_RATE = 16_000
SILENCE_S = 1.0  # before and after the speech


# --- inputs ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def astronaut() -> Photo:
    from skimage import data

    from avatarbot.media.faces import detect_faces, pick_main_face

    rgb = data.astronaut()  # 512 x 512, already on the 64-pixel grid
    faces = detect_faces(rgb)
    main = pick_main_face(faces, rgb.shape[1], rgb.shape[0])
    assert main is not None, "the detector must find the astronaut's face"
    return Photo(rgb=rgb, faces=tuple(faces), main_face=main)


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Audio:
    """1 s silence, a spoken sentence (~2.5 s), 1 s silence."""
    voice = _espeak(tmp_path_factory.mktemp("speech") / "speech.wav", "Hello there, I am talking to you now.")
    gap = np.zeros(int(SILENCE_S * SAMPLE_RATE), np.float32)
    return Audio(samples=np.concatenate([gap, voice, gap]), sample_rate=SAMPLE_RATE)


def _espeak(path, text: str) -> np.ndarray:
    espeak = shutil.which("espeak-ng") or shutil.which("espeak")
    if espeak is None:
        pytest.skip("espeak-ng is not installed (Debian package espeak-ng)")
    subprocess.run([espeak, "-w", str(path), text], check=True, capture_output=True, timeout=30)
    with wave.open(str(path)) as f:
        rate = f.getframerate()
        pcm = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").astype(np.float32) / 32768
    # espeak writes 22.05 kHz; linear resampling is plenty for loudness-driven animation.
    t = np.arange(int(len(pcm) * SAMPLE_RATE / rate)) / SAMPLE_RATE
    return np.interp(t, np.arange(len(pcm)) / rate, pcm).astype(np.float32)


def _render(photo: Photo, audio: Audio, **options):
    clip = LiteEngine().render(photo, audio, RenderOptions(**options))
    return clip, np.stack(list(clip.frames))


def _box(photo: Photo, names, pad_x: float, pad_top: float, pad_bottom: float):
    """Rows/columns around the named landmarks, padded in units of the eye distance."""
    face = photo.main_face
    (lx, ly), (rx, ry) = face.landmarks["left_eye"], face.landmarks["right_eye"]
    iod = float(np.hypot(rx - lx, ry - ly))
    xs = [face.landmarks[n][0] for n in names]
    ys = [face.landmarks[n][1] for n in names]
    return (
        slice(int(min(ys) - pad_top * iod), int(max(ys) + pad_bottom * iod)),
        slice(int(min(xs) - pad_x * iod), int(max(xs) + pad_x * iod)),
    )


def _mouth(photo):
    return _box(photo, ["mouth_left", "mouth_right", "upper_lip", "lower_lip"], 0.15, 0.15, 0.45)


def _change(frames: np.ndarray, photo: Photo, region) -> np.ndarray:
    """Mean absolute difference from the still photo inside `region`, per frame."""
    rows, cols = region
    return np.abs(frames[:, rows, cols].astype(np.int16) - photo.rgb[rows, cols].astype(np.int16)).mean(axis=(1, 2, 3))


def _loudness_per_frame(audio: Audio, frame_count: int) -> np.ndarray:
    hop = audio.sample_rate // FPS
    padded = np.pad(audio.samples, (0, frame_count * hop))
    return np.sqrt((padded[: frame_count * hop].reshape(frame_count, hop) ** 2).mean(axis=1))


# --- the clip --------------------------------------------------------------------------------------
def test_clip_covers_the_audio_with_frames_of_the_photo_size(astronaut, speech):
    clip, frames = _render(astronaut, speech)
    expected = frame_count_for(speech.duration)
    assert clip.frame_count == expected == len(frames)
    assert len(frames) / FPS >= speech.duration > (len(frames) - 1) / FPS
    assert (clip.width, clip.height, clip.fps) == (512, 512, FPS)
    assert frames.shape[1:] == (512, 512, 3) and frames.dtype == np.uint8
    assert clip.notes == []


def test_mouth_moves_with_speech_and_holds_still_in_silence(astronaut, speech):
    _, frames = _render(astronaut, speech, motion=0.0)
    loudness = _loudness_per_frame(speech, len(frames))
    silent = loudness < 1e-4
    loud = loudness > np.percentile(loudness[~silent], 50)
    # Lips lead the sound a little and take a few frames to close: judge silence away from it.
    settled = silent & (np.convolve(~silent, np.ones(9), mode="same") == 0)
    assert settled.sum() > 30 and loud.sum() > 15
    # In silence the mouth rests (closed, the same in every frame: the head is still at motion 0
    # and blinks are far from the mouth) ...
    rows, cols = _mouth(astronaut)
    resting = frames[settled][:, rows, cols].astype(np.int16)
    assert np.abs(resting - resting[0]).max() <= 1
    # ... and while talking it keeps changing shape.
    between_frames = np.abs(np.diff(frames[:, rows, cols].astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    assert between_frames[loud[1:]].mean() > 1.0


def test_an_opened_closed_mouth_is_dark_inside_not_a_stretch(speech):
    """Grace Hopper's closed mouth (matplotlib's sample photo): the opening shows a painted
    inside, not lip and skin pulled apart."""
    from bench.lite_quality import photo

    hopper = photo("hopper")
    _, frames = _render(hopper, speech, motion=0.0)
    rows, cols = _mouth(hopper)
    change = _change(frames, hopper, (rows, cols))
    widest = frames[int(np.argmax(change))][rows, cols].astype(np.float32).mean(axis=2)
    still = hopper.rgb[rows, cols].astype(np.float32).mean(axis=2)
    assert (widest < 60).sum() > (still < 60).sum() + 200  # her box also holds her dark collar


def test_background_far_from_the_face_stays_put(astronaut, speech):
    _, frames = _render(astronaut, speech, motion=2.0)
    far = (slice(400, 512), slice(0, 512))  # the suit and the flag, well below the head
    side = (slice(0, 300), slice(420, 512))  # the wall right of the head
    assert _change(frames, astronaut, far).max() < 0.5
    assert _change(frames, astronaut, side).max() < 0.5


def test_head_moves_only_when_motion_is_on(astronaut, speech):
    hair = _box(astronaut, ["left_eye", "right_eye"], 0.5, 1.1, -0.45)  # forehead and hair
    _, still = _render(astronaut, speech, motion=0.0, seed=5)
    _, lively = _render(astronaut, speech, motion=1.0, seed=5)
    assert _change(still, astronaut, hair).max() == 0.0
    moved = _change(lively, astronaut, hair)
    assert moved.max() > 2.0 and (moved > 0.5).mean() > 0.5  # most of the time, not a twitch


def test_warps_fade_out_inside_their_regions_so_no_seam_shows(astronaut, speech):
    """Each warp runs on a rectangle of the photo only; at the rectangle's edge (where that edge
    is not the image's own) nothing may move, or the rectangle's outline would tear through the
    picture whenever the head moves or the jaw drops."""
    from avatarbot.avatar.lite.animation import LiteAnimation

    animation = LiteAnimation.prepare(astronaut, speech, RenderOptions(), frame_count_for(speech.duration))
    face, head = animation.face, animation.head
    region_photo = astronaut.rgb[face.region.slices]
    extreme = face.apply(region_photo, 1.0, 1.0, 1.0, 1.0)
    head_photo = astronaut.rgb[head.region.slices]
    moved = head.apply(head_photo, 0.1, 0.3, 0.3, 0.1, 0.1)
    height, width = astronaut.rgb.shape[:2]
    for name, region, still, warped in (
        ("face", face.region, region_photo, extreme),
        ("head", head.region, head_photo, moved),
    ):
        change = np.abs(warped.astype(np.int16) - still.astype(np.int16)).max(axis=2)
        edges = []
        if region.y0 > 0:
            edges.append(change[0])
        if region.y1 < height:
            edges.append(change[-1])
        if region.x0 > 0:
            edges.append(change[:, 0])
        if region.x1 < width:
            edges.append(change[:, -1])
        assert edges, f"{name} region covers the whole photo"
        assert max(e.max() for e in edges) <= 1, f"{name} warp is not still at its edge"
        assert change.max() > 50  # and it does move something inside


def test_same_seed_same_clip_other_seed_other_clip(astronaut, speech):
    _, first = _render(astronaut, speech, seed=11)
    _, again = _render(astronaut, speech, seed=11)
    _, other = _render(astronaut, speech, seed=12)
    assert np.array_equal(first, again)
    differs = np.abs(first.astype(np.int16) - other.astype(np.int16)).mean(axis=(1, 2, 3)) > 0.05
    assert differs.mean() > 0.5


def test_eyes_blink_in_silence_now_and_then(astronaut):
    silence = Audio(samples=np.zeros(7 * SAMPLE_RATE, np.float32), sample_rate=SAMPLE_RATE)
    _, frames = _render(astronaut, silence, motion=0.0, seed=3)
    eyes = _change(frames, astronaut, _box(astronaut, ["left_eye", "right_eye"], 0.3, 0.25, 0.2))
    closed = eyes > 2.0
    starts = np.flatnonzero(np.diff(closed.astype(int)) == 1)
    assert 1 <= len(starts) <= 5  # a blink every few seconds
    assert closed.sum() <= 5 * len(starts) + 1  # each one brief (120-250 ms)
    rows, cols = _mouth(astronaut)
    mouth = frames[:, rows, cols].astype(np.int16)
    assert np.abs(mouth - mouth[0]).max() == 0  # no voice, no mouth motion


# --- progress, cancel ------------------------------------------------------------------------------
def test_progress_counts_up_to_the_last_frame(astronaut, speech):
    seen = []
    clip = LiteEngine().render(astronaut, speech, RenderOptions(), progress=seen.append)
    for _ in clip.frames:
        pass
    rendering = [p for p in seen if p.stage == "rendering"]
    assert rendering[-1].step == rendering[-1].total == clip.frame_count
    steps = [p.step for p in rendering]
    assert steps == sorted(steps) and len(steps) >= clip.frame_count // 20


def test_cancel_stops_within_a_frame(astronaut, speech):
    produced = 0
    clip = LiteEngine().render(astronaut, speech, RenderOptions(), should_cancel=lambda: produced >= 5)
    with pytest.raises(errors.RenderCancelled) as caught:
        for _ in clip.frames:
            produced += 1
    assert produced == 5
    assert caught.value.user_message == messages.CANCELLED


def test_cancelled_before_start_renders_nothing(astronaut, speech):
    with pytest.raises(errors.RenderCancelled):
        LiteEngine().render(astronaut, speech, RenderOptions(), should_cancel=lambda: True)


# --- other photos ----------------------------------------------------------------------------------
def test_photo_without_a_face_moves_as_a_whole_with_a_note(speech):
    from skimage import data

    coffee = data.coffee()  # 400 x 600, a cup, no face; not on the 64 grid either
    clip, frames = _render(Photo(rgb=coffee), speech, quality="fast")
    assert messages.NO_FACE_NOTE in clip.notes
    assert clip.width % 64 == 0 and clip.height % 64 == 0 and min(clip.width, clip.height) == 384
    assert frames.shape == (frame_count_for(speech.duration), clip.height, clip.width, 3)
    between_frames = np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    assert (between_frames > 0.05).mean() > 0.8  # alive throughout, not a still
    assert between_frames.max() < 6.0  # and gentle, not a jolt
    # No black borders: the edges keep the picture's own colours.
    edges = np.concatenate(
        [frames[:, :2].reshape(-1, 3), frames[:, -2:].reshape(-1, 3), frames[:, :, :2].reshape(-1, 3)]
    )
    assert (edges.max(axis=1) < 10).mean() < 0.01


def test_photo_off_the_size_grid_is_fitted_with_its_face(astronaut, speech):
    import cv2

    from avatarbot.media.faces import detect_faces, pick_main_face

    rgb = cv2.resize(astronaut.rgb, (450, 430), interpolation=cv2.INTER_AREA)
    faces = detect_faces(rgb)
    photo = Photo(rgb=rgb, faces=tuple(faces), main_face=pick_main_face(faces, 450, 430))
    clip, frames = _render(photo, speech, quality="fast")
    assert (clip.width, clip.height) == (384, 384) and frames.shape[1:] == (384, 384, 3)
    assert clip.notes == []


# --- the audio channels ----------------------------------------------------------------------------
def test_recordings_get_rounded_and_spread_lips_from_where_the_energy_sits():
    t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE
    low = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(2, 6))  # energy 300-750 Hz: "oo"-like
    high = sum(np.sin(2 * np.pi * 150 * k * t) for k in range(14, 20))  # 2.1-2.9 kHz: "ee"-like
    samples = np.where(t < 1, 0.0, np.where(t < 2, low, high)).astype(np.float32) * 0.1
    controls = mouth_controls(Audio(samples=samples, sample_rate=SAMPLE_RATE), 3 * FPS)
    first, second, third = (slice(k * FPS + 3, (k + 1) * FPS - 3) for k in range(3))
    assert np.all(controls.gap[first] == 0) and np.abs(controls.width[first]).max() < 0.01
    assert controls.gap[second].min() > 0.2 and controls.gap[third].min() > 0.2
    assert controls.width[second].mean() < -0.3 < 0.3 < controls.width[third].mean()


def test_silent_audio_keeps_the_mouth_shut():
    controls = mouth_controls(Audio(samples=np.zeros(SAMPLE_RATE, np.float32), sample_rate=SAMPLE_RATE), FPS)
    assert not controls.gap.any() and not controls.width.any()


def test_short_dips_between_sung_notes_hold_the_mouth_open():
    """A song's notes with 80 ms breaks between them: speech closes there, a song must not snap
    shut (the issue's complaint)."""
    rate = SAMPLE_RATE
    note = np.sin(2 * np.pi * 220 * np.arange(int(0.8 * rate)) / rate) * 0.3
    dip = np.zeros(int(0.08 * rate))
    pause = np.zeros(int(0.6 * rate))
    samples = np.concatenate([pause, note, dip, note, dip, note, pause]).astype(np.float32)
    controls = mouth_controls(Audio(samples=samples, sample_rate=rate), frame_count_for(len(samples) / rate))
    dips = [round((0.6 + 0.8 * k + 0.08 * (k - 1) + 0.04) * FPS) for k in (1, 2)]
    for frame in dips:
        assert controls.gap[frame] > 0.15, f"mouth snapped shut between notes at frame {frame}"
    assert controls.gap[: round(0.4 * FPS)].max() == 0 and controls.gap[-round(0.4 * FPS) :].max() == 0


def test_importing_the_engine_does_not_import_torch():
    code = "import sys, avatarbot.avatar.lite; from avatarbot.avatar import get_engine; get_engine('lite'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False"


def test_blinks_come_more_often_right_after_a_phrase():
    from avatarbot.avatar.lite.motion import blink_curve

    frames = 60 * FPS
    phrase_end = np.zeros(frames, bool)
    phrase_end[np.arange(3 * FPS, frames, 5 * FPS)] = True  # a phrase ends every 5 s
    ends = np.flatnonzero(phrase_end)
    after_end, anywhere = [], []
    for seed in range(10):
        starts = np.flatnonzero(np.diff((blink_curve(frames, seed, phrase_end) > 0.5).astype(int)) == 1)
        after_end.append(np.mean([((starts > e) & (starts <= e + 8)).any() for e in ends]))
        anywhere.append(len(starts) * 8 / frames)  # chance of a blink in any 8-frame window
        intervals = np.diff(starts) / FPS
        assert intervals.min() >= 0.9 and 8 <= len(starts) <= 40  # a natural, varying cadence
    assert np.mean(after_end) > 0.5 > 2 * np.mean(anywhere)


def test_head_turns_in_depth_the_nose_travels_further_than_the_outline(astronaut, speech):
    """Yaw and pitch are a 2.5D warp: per radian, the nose moves more than the cheek's edge."""
    from avatarbot.avatar.lite.animation import LiteAnimation

    animation = LiteAnimation.prepare(astronaut, speech, RenderOptions(), frame_count_for(speech.duration))
    head = animation.head
    nose = astronaut.main_face.landmarks["nose"]
    cheek = astronaut.main_face.contour("jaw")[2]  # on the face's outline, at the image's left

    def yaw_at(x, y) -> float:
        row = int((y - head.region.y0) / head.step)
        col = int((x - head.region.x0) / head.step)
        return abs(float(head.yaw_x[row, col]))

    assert yaw_at(*nose) > 2 * yaw_at(*cheek) and yaw_at(*nose) > 0.5 * animation.face.iod
    moves = animation.motion
    assert np.degrees(np.abs(moves.yaw)).max() > 2 and np.degrees(np.abs(moves.pitch)).max() > 1
