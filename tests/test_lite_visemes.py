"""The lite engine's mouth on real photos, measured on the rendered frames by a landmark detector
lite does not use (dlib's 68 points; for the three-quarter face, which dlib cannot follow,
MediaPipe's mesh run afresh on each frame; see bench/lite_quality.py, whose definitions these
tests share): lips close on every p/b/m and in every pause, also for a photo whose mouth is open; the
mouth's width varies like a speaker's; upper teeth stay on the skull while the jaw drops.

Photos: the shipped astronaut (a toothy smile), tests/data/open_mouth.jpg (made offline by
tests/data/make_open_mouth.py) and scikit-image's camera man (three-quarter view, grayscale).
Speech: espeak-ng with its phoneme timings. Head motion is off so only the mouth is judged.
"""

from __future__ import annotations

import numpy as np
import pytest

from avatarbot.avatar.engine import RenderOptions, frame_count_for
from avatarbot.avatar.lite.animation import LiteAnimation
from avatarbot.tts.phonemes import espeak_available
from bench import lite_quality as quality

pytestmark = pytest.mark.skipif(not espeak_available(), reason="libespeak-ng is not installed (Debian: espeak-ng)")

PHOTOS = ("astronaut", "open_mouth", "camera")
FRONTAL = ("astronaut", "open_mouth")
TEETH_VISIBLE = 0.012  # normalised squared difference of a clearly visible teeth patch


@pytest.fixture(scope="module")
def text_audio():
    return quality.sound("text")


@pytest.fixture(scope="module")
def tracker():
    return quality.Tracker()


@pytest.fixture(scope="module")
def rendered(text_audio, tracker):
    """photo name -> (photo, frames, measures), rendered once per module."""
    cache = {}

    def get(name: str):
        if name not in cache:
            photo = quality.photo(name)
            options = RenderOptions(seed=1, motion=0.0)
            animation = LiteAnimation.prepare(photo, text_audio, options, frame_count_for(text_audio.duration))
            frames = list(animation.frames())
            measuring = quality.tracker_for(photo, tracker)
            cache[name] = photo, frames, quality.measure(frames, photo.main_face.box, measuring)
        return cache[name]

    return get


@pytest.mark.parametrize("name", PHOTOS)
def test_the_mesh_finds_each_photos_lips_lids_and_jaw(name):
    photo = quality.photo(name)
    assert photo.main_face is not None and photo.main_face.has_contours


@pytest.mark.parametrize("name", PHOTOS)
def test_lips_close_on_every_bilabial_and_in_every_pause(name, rendered, text_audio):
    photo, frames, m = rendered(name)
    labials = quality.bilabial_frames(text_audio.phonemes)
    spans = quality.pauses(text_audio, len(frames))
    assert len(labials) >= 10 and len(spans) >= 3  # the text has them, the audio pauses
    # The measurement can see an open mouth: the photo itself (for two of them) and the speech.
    assert m.gap.max() > 0.06
    on_labials = quality.closed_on_bilabials(m, labials)
    in_pauses = quality.closed_in_pauses(m, spans)
    assert (on_labials <= quality.CLOSED_IOD).all(), f"open on p/b/m: {np.round(on_labials, 3)}"
    assert (in_pauses <= quality.CLOSED_IOD).all(), f"open in pauses: {np.round(in_pauses, 3)}"


@pytest.mark.parametrize("name", FRONTAL)
def test_mouth_width_varies_like_a_speakers(name, rendered, text_audio):
    """Frontal faces only: in the three-quarter view the mouth's far half is foreshortened and the
    mesh barely registers width (bench/RESULTS.md has its number)."""
    _, frames, m = rendered(name)
    assert quality.width_range(m, quality.talking(text_audio, len(frames))) >= 0.12


def test_upper_teeth_stay_with_the_skull_while_the_jaw_drops(rendered):
    """Track the astronaut's upper teeth (and, as a control, her lower lip) through every frame
    where the mouth is open: wherever the teeth show they are where the photo has them, while
    the lower lip moves."""
    import cv2

    photo, frames, m = rendered("astronaut")
    face = photo.main_face
    upper, lower = face.contour("inner_lip_upper"), face.contour("inner_lip_lower")
    middle = len(upper) // 2
    x_mid, width = upper[middle, 0], upper[-1, 0] - upper[0, 0]
    top, gap = upper[middle, 1], lower[middle, 1] - upper[middle, 1]
    cols = slice(int(x_mid - 0.22 * width), int(x_mid + 0.22 * width))
    teeth_rows = slice(int(round(top)), int(round(top + 0.55 * gap)))
    lip_bottom = face.contour("outer_lip_lower")[middle, 1]
    lip_rows = slice(int(round(lower[middle, 1])) + 1, int(round(lip_bottom)) + 2)

    def offset(frame, rows, reach=10):
        """Vertical shift of the photo's patch `rows` x `cols` in `frame` (best match), and how
        well it matches there (normalised squared difference, 0 = identical)."""
        patch = photo.rgb[rows, cols].astype(np.float32)
        window = frame[rows.start - reach : rows.stop + reach, cols].astype(np.float32)
        score = cv2.matchTemplate(window, patch, cv2.TM_SQDIFF_NORMED)[:, 0]
        return int(np.argmin(score)) - reach, float(score.min())

    assert gap > 3  # her smile shows the teeth in the photo
    open_frames = np.flatnonzero(m.gap > 0.06)
    teeth = np.array([offset(frames[i], teeth_rows) for i in open_frames])
    lips = np.array([offset(frames[i], lip_rows) for i in open_frames])
    # Where the upper lip has come down over them the teeth are hidden and match nowhere well;
    # wherever they are visible they must be where the photo has them.
    visible = teeth[:, 1] < TEETH_VISIBLE
    assert visible.sum() >= 5
    assert np.abs(teeth[visible, 0]).max() <= 1, f"upper teeth moved: {teeth[visible]}"
    # Control: the lower lip does move with the jaw (up from her smile's opening for most
    # sounds, down for the widest), so a patch that followed the jaw would be caught.
    assert np.abs(lips[:, 0]).max() >= 3, f"the lower lip should move with the jaw: {lips[:, 0]}"
