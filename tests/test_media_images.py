"""Photos: every decoder, orientation and colour modes, each bad input, faces on a real photo,
and fitting to the engine's size buckets."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import media_samples as samples
import numpy as np
import pytest
from PIL import Image, ImageFile
from skimage import data as skdata

from avatarbot import messages
from avatarbot.errors import (
    AnimatedImageError,
    EmptyFileError,
    ImageError,
    ImageTooLargeError,
    ImageTooSmallError,
    NotAnImageError,
    TruncatedImageError,
    UnsupportedImageFormatError,
)
from avatarbot.media.faces import detect_faces, pick_main_face
from avatarbot.media.images import DRAFT_MIN_SHORT_SIDE, WORKING_MAX_PIXELS, fit_to_bucket, load_photo
from avatarbot.media.types import LANDMARK_NAMES, Face, Photo
from avatarbot.settings import LimitsSettings

LIMITS = LimitsSettings()
DATA = Path(__file__).parent / "data"
RED, BLUE = np.array([220, 30, 30]), np.array([30, 30, 220])


def assert_colour(pixel, expected, tolerance=20):
    assert np.abs(pixel.astype(int) - expected).max() <= tolerance, (pixel, expected)


def _heic_or_skip(image):
    encoded = samples.heic(image)
    if encoded is None:
        pytest.skip("pillow-heif can't encode HEIC here")
    return encoded


def _avif_or_skip(image):
    try:
        return samples.encode(image, "AVIF", quality=90)
    except (KeyError, OSError, ValueError):
        pytest.skip("Pillow has no AVIF encoder here")


# --- every decoder -------------------------------------------------------------------------------

ENCODERS = {
    "JPEG": lambda im: samples.encode(im, "JPEG", quality=92),
    "PNG": lambda im: samples.encode(im, "PNG"),
    "WEBP": lambda im: samples.encode(im, "WEBP", quality=92),
    "GIF": lambda im: samples.encode(im, "GIF"),
    "BMP": lambda im: samples.encode(im, "BMP"),
    "TIFF": lambda im: samples.encode(im, "TIFF"),
    "HEIF": _heic_or_skip,
    "AVIF": _avif_or_skip,
}


@pytest.mark.parametrize("fmt", list(ENCODERS))
def test_each_format_decodes_to_rgb(fmt):
    photo = load_photo(ENCODERS[fmt](samples.two_colour_image()), LIMITS)
    assert photo.source_format == fmt
    assert photo.rgb.shape == (120, 160, 3) and photo.rgb.dtype == np.uint8
    assert_colour(photo.rgb[60, 20], RED)
    assert_colour(photo.rgb[60, 140], BLUE)
    assert photo.faces == () and photo.main_face is None


@pytest.mark.parametrize(
    "orientation, shape, red_at, blue_at",
    [
        (1, (120, 160, 3), (60, 10), (60, 150)),  # as stored
        (3, (120, 160, 3), (60, 150), (60, 10)),  # upside down: red moves right
        (6, (160, 120, 3), (10, 60), (150, 60)),  # rotate 90 clockwise: left edge goes to the top
        (8, (160, 120, 3), (150, 60), (10, 60)),  # rotate 90 anticlockwise: left edge to the bottom
    ],
)
def test_exif_orientation_is_applied(orientation, shape, red_at, blue_at):
    photo = load_photo(samples.jpeg_with_orientation(orientation), LIMITS)
    assert photo.rgb.shape == shape
    assert_colour(photo.rgb[red_at], RED)
    assert_colour(photo.rgb[blue_at], BLUE)


def test_transparency_is_composited_on_white():
    image = samples.two_colour_image(mode="RGBA")
    alpha = np.zeros((120, 160), dtype=np.uint8)
    alpha[:, :80] = 255  # red half opaque, blue half fully transparent
    image.putalpha(Image.fromarray(alpha))
    photo = load_photo(samples.encode(image, "PNG"), LIMITS)
    assert_colour(photo.rgb[60, 20], RED, tolerance=0)
    assert_colour(photo.rgb[60, 140], np.array([255, 255, 255]), tolerance=0)


def test_palette_with_transparency_and_grey_alpha():
    indices = np.zeros((120, 160), dtype=np.uint8)
    indices[:, 80:] = 1
    palette = Image.fromarray(indices, mode="P")
    palette.putpalette([220, 30, 30, 30, 30, 220])
    photo = load_photo(samples.encode(palette, "PNG", transparency=1), LIMITS)  # index 1 (blue) is see-through
    assert_colour(photo.rgb[60, 20], RED, tolerance=0)
    assert_colour(photo.rgb[60, 140], np.array([255, 255, 255]), tolerance=0)
    grey_alpha = Image.new("LA", (100, 100), (0, 0))  # black but fully transparent
    assert_colour(load_photo(samples.encode(grey_alpha, "PNG"), LIMITS).rgb[50, 50], np.array([255, 255, 255]), 0)


def test_cmyk_jpeg_becomes_rgb():
    photo = load_photo(samples.encode(samples.two_colour_image().convert("CMYK"), "JPEG", quality=95), LIMITS)
    assert photo.rgb.shape == (120, 160, 3)
    assert_colour(photo.rgb[60, 20], RED, tolerance=25)
    assert_colour(photo.rgb[60, 140], BLUE, tolerance=25)


def test_sixteen_bit_grey_is_scaled_not_clipped():
    ramp = np.tile(np.linspace(0, 65535, 128).astype(np.uint16), (80, 1))
    photo = load_photo(samples.encode(Image.fromarray(ramp), "PNG"), LIMITS)
    assert photo.rgb.dtype == np.uint8
    assert photo.rgb[0, 0, 0] == 0 and photo.rgb[0, -1, 0] == 255
    assert 120 <= photo.rgb[0, 64, 0] <= 135  # mid-grey stays mid-grey
    assert (photo.rgb[..., 0] == photo.rgb[..., 2]).all()


def _gradient(width, height):
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None] * np.ones((height, 1, 3), np.float32)
    return Image.fromarray(ramp.astype(np.uint8))


def test_large_jpeg_is_decoded_at_reduced_scale():
    photo = load_photo(samples.encode(_gradient(4000, 3000), "JPEG", quality=80), LIMITS)
    assert photo.rgb.shape == (1500, 2000, 3)  # JPEG draft at 1/2: still above DRAFT_MIN_SHORT_SIDE
    assert DRAFT_MIN_SHORT_SIDE <= 1500 and 1500 * 2000 <= WORKING_MAX_PIXELS
    assert photo.rgb[100, 10, 0] < 20 and photo.rgb[100, -10, 0] > 235


def test_large_png_is_brought_to_the_working_size():
    photo = load_photo(samples.encode(_gradient(4000, 2000), "PNG"), LIMITS)
    height, width = photo.rgb.shape[:2]
    assert WORKING_MAX_PIXELS * 0.99 <= width * height <= WORKING_MAX_PIXELS
    assert width / height == pytest.approx(2.0, rel=0.01)


def test_panorama_keeps_its_height():
    """Shrinking by the long side would turn a 20000 x 400 panorama into a 2048 x 41 strip."""
    photo = load_photo(samples.encode(_gradient(20000, 400), "PNG"), LIMITS)
    height, width = photo.rgb.shape[:2]
    assert height >= 240 and width * height <= WORKING_MAX_PIXELS


# --- bad input: each its own error, each with a sentence for the user ---------------------------

BAD_INPUTS = {
    "zero bytes": (lambda: b"", EmptyFileError, messages.EMPTY_FILE),
    "text named .jpg": (lambda: b"Dear diary,\nnot a photo.\n" * 20, NotAnImageError, messages.NOT_AN_IMAGE),
    "truncated jpeg (half)": (
        lambda: (lambda b: b[: len(b) // 2])(samples.encode(samples.two_colour_image(640, 480), "JPEG")),
        TruncatedImageError,
        messages.TRUNCATED_IMAGE,
    ),
    "truncated jpeg (tail cut)": (
        lambda: (lambda b: b[: int(len(b) * 0.9)])(samples.encode(samples.two_colour_image(640, 480), "JPEG")),
        TruncatedImageError,
        messages.TRUNCATED_IMAGE,
    ),
    "truncated png": (
        lambda: (lambda b: b[: int(len(b) * 0.7)])(samples.encode(samples.two_colour_image(640, 480), "PNG")),
        TruncatedImageError,
        messages.TRUNCATED_IMAGE,
    ),
    "png declaring 30000x30000": (
        lambda: samples.png_header_only(30000, 30000),
        ImageTooLargeError,
        messages.image_too_large(900_000_000, LIMITS.max_image_pixels),
    ),
    "png declaring 8000x6000 (over our limit, under Pillow's)": (
        lambda: samples.png_header_only(8000, 6000),
        ImageTooLargeError,
        messages.image_too_large(48_000_000, LIMITS.max_image_pixels),
    ),
    "animated gif": (lambda: samples.animated("GIF"), AnimatedImageError, messages.ANIMATED_IMAGE),
    "animated webp": (lambda: samples.animated("WEBP"), AnimatedImageError, messages.ANIMATED_IMAGE),
    "animated png": (lambda: samples.animated("PNG"), AnimatedImageError, messages.ANIMATED_IMAGE),
    "1x1 png": (
        lambda: samples.encode(Image.new("RGB", (1, 1)), "PNG"),
        ImageTooSmallError,
        messages.image_too_small(1, 1, LIMITS.min_image_side),
    ),
    "ico (a real image, not a photo format)": (
        lambda: samples.encode(samples.two_colour_image(64, 64), "ICO"),
        UnsupportedImageFormatError,
        messages.UNSUPPORTED_IMAGE,
    ),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_gets_its_own_error_and_message(name):
    make, error_type, user_message = BAD_INPUTS[name]
    with pytest.raises(error_type) as caught:
        load_photo(make(), LIMITS)
    assert caught.value.user_message == user_message
    assert caught.value.detail  # something for the operator's log


def test_bomb_header_is_tiny_on_disk():
    assert len(samples.png_header_only(30000, 30000)) < 100


def test_heif_without_a_decoder_is_named_unsupported(monkeypatch):
    # The bytes of a real HEIC, opened as if pillow-heif weren't installed.
    heic = _heic_or_skip(samples.two_colour_image())
    from PIL import Image as PILImage

    monkeypatch.setattr(PILImage, "open", lambda *a, **k: (_ for _ in ()).throw(PILImage.UnidentifiedImageError("x")))
    with pytest.raises(UnsupportedImageFormatError) as caught:
        load_photo(heic, LIMITS)
    assert caught.value.user_message == messages.UNSUPPORTED_IMAGE


def test_truncated_images_are_never_grey_filled():
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_every_image_error_is_an_input_error():
    jpeg = samples.encode(samples.two_colour_image(640, 480), "JPEG")
    with pytest.raises(ImageError):
        load_photo(jpeg[:300], LIMITS)


# --- faces on a real photo -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def astronaut():
    return skdata.astronaut()


def _check_astronaut_face(face: Face, tolerance: float):
    # Hand-checked on an annotated render of skimage's astronaut (Eileen Collins): eye centres near
    # (204, 102) and (246, 104), lips meeting around y 143, chin near y 178.
    lm = face.landmarks
    assert set(LANDMARK_NAMES) <= set(lm)
    assert lm["left_eye"] == pytest.approx((204, 102), abs=tolerance)
    assert lm["right_eye"] == pytest.approx((246, 104), abs=tolerance)
    assert 215 <= lm["nose"][0] <= 235 and 118 <= lm["nose"][1] <= 140
    assert lm["mouth_left"][0] < lm["nose"][0] < lm["mouth_right"][0]
    assert 132 <= lm["mouth_left"][1] <= 155 and 132 <= lm["mouth_right"][1] <= 155
    assert lm["nose"][1] < lm["upper_lip"][1] < lm["lower_lip"][1] < lm["chin"][1]
    assert 165 <= lm["chin"][1] <= 195
    x0, y0, x1, y1 = face.box
    assert x0 < lm["left_eye"][0] < lm["right_eye"][0] < x1 and y0 < lm["left_eye"][1] < y1


def test_dlib_finds_the_astronaut_and_places_landmarks(astronaut):
    faces = detect_faces(astronaut, backend="dlib")
    assert len(faces) == 1
    _check_astronaut_face(faces[0], tolerance=6)
    # The eye points sit on dark pixels (iris/lashes), darker than the cheek below them.
    gray = astronaut.mean(axis=2)
    for eye in ("left_eye", "right_eye"):
        x, y = (int(round(v)) for v in faces[0].landmarks[eye])
        assert gray[y - 1 : y + 2, x - 1 : x + 2].mean() < gray[y + 18, x] - 30


def test_opencv_fallback_finds_the_astronaut(astronaut):
    faces = detect_faces(astronaut, backend="opencv")
    assert len(faces) == 1
    _check_astronaut_face(faces[0], tolerance=12)


def _iod(face: Face) -> float:
    return float(np.hypot(*np.subtract(face.landmarks["right_eye"], face.landmarks["left_eye"])))


def _inner_lip_gap(face: Face) -> float:
    """Largest distance between the inner lip contours, in inter-ocular distances."""
    return float((face.contour("inner_lip_lower")[:, 1] - face.contour("inner_lip_upper")[:, 1]).max()) / _iod(face)


def test_face_mesh_gives_the_astronaut_real_contours(astronaut):
    faces = detect_faces(astronaut, backend="mediapipe")
    assert len(faces) == 1 and faces[0].has_contours and not faces[0].landmarks_estimated
    face = faces[0]
    _check_astronaut_face(face, tolerance=6)
    # Contours run from the image's left to its right, lips between the mouth corners...
    for name in ("outer_lip_upper", "inner_lip_lower", "left_upper_lid", "right_upper_lid", "jaw"):
        xs = face.contour(name)[:, 0]
        assert xs[0] < xs[len(xs) // 2] < xs[-1], name
    # ... each lid above its lower lid, brows above the eyes, and her toothy smile shows as a gap.
    for side in ("left", "right"):
        assert face.contour(f"{side}_upper_lid")[4, 1] < face.contour(f"{side}_lower_lid")[4, 1]
        assert face.contour(f"{side}_brow")[:, 1].max() < face.landmarks[f"{side}_eye"][1]
    assert 0.03 < _inner_lip_gap(face) < 0.2


def test_face_mesh_finds_a_three_quarter_grayscale_face():
    """scikit-image's camera man: turned away, grayscale, 75 px wide; dlib's HOG misses him."""
    gray = skdata.camera()
    assert detect_faces(np.stack([gray] * 3, axis=-1), backend="dlib") == []
    faces = detect_faces(np.stack([gray] * 3, axis=-1))
    assert len(faces) == 1 and faces[0].has_contours
    x0, y0, x1, y1 = faces[0].box
    assert 190 < x0 < x1 < 265 and 120 < y0 < y1 < 200  # his head, left of the camera
    # Turned to the image's right: his far eye is closer to the nose than his near one.
    lm = faces[0].landmarks
    assert lm["right_eye"][0] - lm["nose"][0] < lm["nose"][0] - lm["left_eye"][0]


def test_face_mesh_sees_an_open_and_a_closed_mouth():
    open_mouth = np.asarray(Image.open(DATA / "open_mouth.jpg").convert("RGB"))
    [face] = detect_faces(open_mouth)
    assert _inner_lip_gap(face) > 0.15
    hopper = np.asarray(Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
    [face] = detect_faces(hopper)
    assert face.has_contours and _inner_lip_gap(face) < 0.04


@pytest.mark.parametrize("backend", ["mediapipe", "dlib", "opencv"])
def test_no_face_in_a_coffee_cup_or_a_gradient(backend):
    assert detect_faces(skdata.coffee(), backend=backend) == []
    gradient = np.broadcast_to(np.linspace(0, 255, 300, dtype=np.uint8)[None, :, None], (200, 300, 3)).copy()
    assert detect_faces(gradient, backend=backend) == []


def test_boxes_are_in_full_resolution_pixels(astronaut):
    big = np.array(Image.fromarray(astronaut).resize((1600, 1600), Image.Resampling.BICUBIC))
    face = detect_faces(big)[0]  # detected on a downscaled copy
    scale = 1600 / 512
    assert face.landmarks["left_eye"] == pytest.approx((204 * scale, 102 * scale), abs=8 * scale)
    assert face.center[0] == pytest.approx(222 * scale, abs=15 * scale)


def test_load_photo_finds_the_main_face(astronaut):
    png = samples.encode(Image.fromarray(astronaut), "PNG")
    photo = load_photo(png, LIMITS)
    assert len(photo.faces) == 1 and photo.main_face == photo.faces[0]
    assert load_photo(png, LIMITS, detect_faces=False).faces == ()


def _face(x0, y0, size):
    return Face(box=(x0, y0, x0 + size, y0 + size), score=1.0, landmarks={})


def test_pick_main_face_prefers_large_then_central():
    big_corner, small_centre = _face(0, 0, 200), _face(450, 450, 100)
    assert pick_main_face([small_centre, big_corner], 1000, 1000) == big_corner
    same_size_centre, same_size_corner = _face(450, 450, 100), _face(0, 0, 100)
    assert pick_main_face([same_size_corner, same_size_centre], 1000, 1000) == same_size_centre
    assert pick_main_face([], 1000, 1000) is None


# --- fitting to the engine's buckets ------------------------------------------------------------


def _photo_with_astronaut_at(canvas_w, canvas_h, x, y, astronaut):
    canvas = np.full((canvas_h, canvas_w, 3), 90, dtype=np.uint8)
    canvas[y : y + 512, x : x + 512] = astronaut
    faces = tuple(detect_faces(canvas))
    return Photo(rgb=canvas, faces=faces, main_face=pick_main_face(faces, canvas_w, canvas_h))


@pytest.mark.parametrize(
    "canvas, at, short_side, expected",
    [
        ((512, 512), (0, 0), 512, (512, 512)),  # already a bucket
        ((1400, 600), (880, 40), 512, (1024, 512)),  # panorama: cropped to 2:1 around the face
        ((700, 520), (100, 0), 384, (512, 384)),  # 516.9 wide: nearest multiple of 64 is 512
        ((560, 980), (20, 460), 704, (704, 1216)),  # tall: face low in the frame
        ((512, 700), (0, 100), 512, (512, 704)),  # 700 -> 704: padded by repeating edges
    ],
)
def test_fit_to_bucket_sizes_and_keeps_the_face(canvas, at, short_side, expected, astronaut):
    photo = _photo_with_astronaut_at(*canvas, *at, astronaut)
    assert photo.main_face is not None
    fitted = fit_to_bucket(photo, short_side)
    assert (fitted.width, fitted.height) == expected
    assert fitted.width % 64 == 0 and fitted.height % 64 == 0
    assert min(fitted.width, fitted.height) == short_side
    face = fitted.main_face
    assert face is not None
    scale = short_side / min(canvas)
    # Each landmark still points at the same picture content it pointed at before.
    for name in ("left_eye", "right_eye", "nose", "chin"):
        old_x, old_y = photo.main_face.landmarks[name]
        new_x, new_y = face.landmarks[name]
        assert 0 <= new_x < fitted.width and 0 <= new_y < fitted.height
        before = photo.rgb[int(old_y) - 2 : int(old_y) + 3, int(old_x) - 2 : int(old_x) + 3].mean(axis=(0, 1))
        after = fitted.rgb[int(new_y) - 2 : int(new_y) + 3, int(new_x) - 2 : int(new_x) + 3].mean(axis=(0, 1))
        assert np.abs(before - after).max() < 40, (name, before, after)
    assert face.width == pytest.approx(photo.main_face.width * scale, rel=0.01)
    # The whole face box is inside the frame.
    x0, y0, x1, y1 = face.box
    assert x0 >= 0 and y0 >= 0 and x1 <= fitted.width and y1 <= fitted.height


def test_fit_to_bucket_without_a_face_crops_the_centre():
    rgb = np.zeros((512, 2048, 3), dtype=np.uint8)
    rgb[:, 1000:1048] = 255  # a white bar in the middle
    fitted = fit_to_bucket(Photo(rgb=rgb), 512)
    assert (fitted.width, fitted.height) == (1024, 512)
    assert fitted.rgb[:, 490:530].mean() > 200 and fitted.rgb[:, :400].mean() == 0


def test_face_detection_is_safe_from_many_threads():
    """Bots decode photos in worker threads; dlib crashed the process when two ran at once."""
    import subprocess
    import sys

    code = (
        "from concurrent.futures import ThreadPoolExecutor\n"
        "from skimage import data\n"
        "from avatarbot.media.faces import detect_faces\n"
        "img = data.astronaut()\n"
        "with ThreadPoolExecutor(8) as pool:\n"
        "    counts = list(pool.map(lambda _: len(detect_faces(img)), range(96)))\n"
        "print(set(counts))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "{1}"


def test_mesh_contours_travel_with_the_job_and_follow_resizing(astronaut):
    """Faces are found once when the photo arrives; the worker gets them from the job record.
    The contours ride in the same landmarks dict, so they survive the record and the fit to a
    size bucket like the named points do."""
    from avatarbot.tasks.inputs import faces_json, photo_png, read_photo

    photo = load_photo(samples.encode(Image.fromarray(astronaut), "PNG"), LIMITS)
    fitted = fit_to_bucket(photo, 384)  # 512 -> 384: every point scales by 0.75
    assert fitted.main_face.has_contours
    for name in ("inner_lip_upper", "left_upper_lid", "jaw"):
        assert fitted.main_face.contour(name) == pytest.approx(photo.main_face.contour(name) * 0.75, abs=0.01)
    stored = read_photo(photo_png(fitted.rgb), faces_json(fitted))
    assert stored.main_face.has_contours
    assert stored.main_face.contour("inner_lip_lower") == pytest.approx(fitted.main_face.contour("inner_lip_lower"))


def test_face_mesh_indices_fill_every_contour_a_face_carries():
    """`Face.contour` reads the lengths in media/types.py; the mesh's index table must give each
    contour exactly that many points (two tables, one fact: this keeps them in step)."""
    from avatarbot.media.face_mesh import MESH_INDICES
    from avatarbot.media.types import CONTOUR_LENGTHS

    assert {name: len(indices) for name, indices in MESH_INDICES.items()} == CONTOUR_LENGTHS
