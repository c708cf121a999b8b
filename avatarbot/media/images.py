"""Turn the bytes of an uploaded photo into a checked RGB array with its faces found.

The order matters for safety and speed: the pixel count is read from the header and refused
before anything is decoded (a 30000x30000 PNG is a few hundred bytes on disk and gigabytes in
memory); big JPEGs are decoded at a reduced scale straight away (`Image.draft`), and everything
is brought down to `WORKING_MAX_PIXELS`, since no engine renders above 704 px anyway.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import re
import warnings

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from avatarbot import messages
from avatarbot.errors import (
    AnimatedImageError,
    EmptyFileError,
    ImageTooLargeError,
    ImageTooSmallError,
    NotAnImageError,
    TruncatedImageError,
    UnsupportedImageFormatError,
)
from avatarbot.media.faces import detect_faces as find_faces
from avatarbot.media.faces import pick_main_face
from avatarbot.media.types import Face, Photo
from avatarbot.settings import LimitsSettings

log = logging.getLogger(__name__)

# Photos are kept at most this many pixels (2048 x 1536 worth): room to crop for the largest
# render bucket (704 px short side) while face detection and resizing stay fast. Counted by area,
# not by the long side, so a panorama keeps its height instead of collapsing into a thin strip.
WORKING_MAX_PIXELS = 2048 * 1536
# JPEGs may be decoded at 1/2, 1/4 or 1/8 scale as long as the short side keeps this much: above
# the largest bucket (704 px), with room left to crop around the face.
DRAFT_MIN_SHORT_SIDE = 1024
# Pillow format names we accept. MPO is what many phones and cameras call a JPEG with a
# second (depth or preview) image; its first frame is the photo.
ACCEPTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF"})
# Formats where more than one frame means an animation (a multi-page TIFF or an MPO is not one).
ANIMATION_FORMATS = frozenset({"GIF", "PNG", "WEBP", "AVIF"})
# ISO-BMFF brands of HEIF/AVIF files, to name the format when no decoder for it is installed.
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis")
WHITE = (255, 255, 255)


@functools.cache
def _register_heif() -> bool:
    """HEIC (iPhone photos) through pillow-heif, which bundles libheif and needs no network."""
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
        return True
    except Exception as exc:  # not installed, or its native library fails to load
        log.info("HEIC support unavailable: %s", exc)
        return False


def load_photo(data: bytes, limits: LimitsSettings, *, detect_faces: bool = True) -> Photo:
    """Decode and check a photo; raise a specific `ImageError` for anything a user could send wrong."""
    if not data:
        raise EmptyFileError(messages.EMPTY_FILE, detail="photo: zero bytes")
    # Never let Pillow grey-fill a cut-off file: we want the error, not a half-grey face.
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set; truncated photos would pass silently")
    _register_heif()

    image = _open(data, limits)
    fmt = image.format or "unknown"
    if fmt not in ACCEPTED_FORMATS:
        raise UnsupportedImageFormatError(messages.UNSUPPORTED_IMAGE, detail=f"photo format {fmt}")
    width, height = image.size
    _check_size(width, height, limits)
    if fmt in ANIMATION_FORMATS and getattr(image, "n_frames", 1) > 1:
        raise AnimatedImageError(messages.ANIMATED_IMAGE, detail=f"{fmt} with {image.n_frames} frames")

    if fmt in ("JPEG", "MPO"):
        # Decode at 1/2, 1/4 or 1/8 scale when that still leaves DRAFT_MIN_SHORT_SIDE: much
        # faster and far less memory for big phone photos.
        image.draft("RGB", _draft_request(width, height))
    try:
        image.load()
    except (OSError, EOFError, SyntaxError, ValueError) as exc:
        raise TruncatedImageError(messages.TRUNCATED_IMAGE, detail=f"{fmt} decode failed: {exc}") from exc

    image = _apply_orientation(image)
    if image.width * image.height > WORKING_MAX_PIXELS:
        scale = math.sqrt(WORKING_MAX_PIXELS / (image.width * image.height))
        size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    rgb = _to_rgb_array(image)

    faces: tuple[Face, ...] = ()
    main_face = None
    if detect_faces:
        faces = tuple(find_faces(rgb))
        main_face = pick_main_face(faces, rgb.shape[1], rgb.shape[0])
    log.debug("photo %s %dx%d -> %dx%d, %d face(s)", fmt, width, height, rgb.shape[1], rgb.shape[0], len(faces))
    return Photo(rgb=rgb, faces=faces, main_face=main_face, source_format=fmt)


def _open(data: bytes, limits: LimitsSettings) -> Image.Image:
    """Read only the header. Pillow's own bomb check (at 2x its MAX_IMAGE_PIXELS) maps to ours."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we check ourselves
            return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        match = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(match.group(1)) if match else limits.max_image_pixels + 1
        raise ImageTooLargeError(
            messages.image_too_large(pixels, limits.max_image_pixels), detail=f"Pillow: {exc}"
        ) from exc
    except UnidentifiedImageError as exc:
        if _looks_like_heif(data):
            raise UnsupportedImageFormatError(
                messages.UNSUPPORTED_IMAGE, detail="HEIF/AVIF photo but no decoder installed (pip install pillow-heif)"
            ) from exc
        raise NotAnImageError(messages.NOT_AN_IMAGE, detail=f"unidentified image, starts {data[:16]!r}") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # a recognised header that is itself broken
        raise TruncatedImageError(messages.TRUNCATED_IMAGE, detail=f"header unreadable: {exc}") from exc


def _looks_like_heif(data: bytes) -> bool:
    return data[4:8] == b"ftyp" and any(brand in data[8:64] for brand in _HEIF_BRANDS)


def _check_size(width: int, height: int, limits: LimitsSettings) -> None:
    pixels = width * height
    if pixels > limits.max_image_pixels:
        raise ImageTooLargeError(
            messages.image_too_large(pixels, limits.max_image_pixels), detail=f"{width}x{height} declared"
        )
    if min(width, height) < limits.min_image_side:
        raise ImageTooSmallError(
            messages.image_too_small(width, height, limits.min_image_side), detail=f"{width}x{height}"
        )


def _draft_request(width: int, height: int) -> tuple[int, int]:
    """The smallest size `draft` may reduce to so the short side still reaches DRAFT_MIN_SHORT_SIDE."""
    factor = min(1.0, DRAFT_MIN_SHORT_SIDE / min(width, height))
    return (max(1, math.ceil(width * factor)), max(1, math.ceil(height * factor)))


def _apply_orientation(image: Image.Image) -> Image.Image:
    """Phones store photos sideways and say so in EXIF; a broken EXIF block is ignored, not fatal."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception as exc:
        log.warning("ignoring unreadable EXIF orientation: %s", exc)
        return image


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    """Any mode (palette, CMYK, 16-bit, with alpha) to (H, W, 3) uint8; alpha goes onto white."""
    mode = image.mode
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if values.max(initial=0) > 255 else 255.0
        gray = np.clip(values / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info)
    try:
        if has_alpha:
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, WHITE + (255,))
            image = Image.alpha_composite(background, rgba).convert("RGB")
        elif mode != "RGB":
            image = image.convert("RGB")
    except ValueError as exc:  # a colour mode Pillow can't convert (e.g. LAB)
        raise UnsupportedImageFormatError(messages.UNSUPPORTED_IMAGE, detail=f"image mode {mode}: {exc}") from exc
    return np.array(image, dtype=np.uint8)


# --- fitting a photo to an engine's size buckets ------------------------------------------------

# HunyuanVideo-Avatar works on sides that are multiples of 64 (its VAE downsamples 8x and the
# transformer patches 2x2 more, with room to spare); that also keeps H.264 sizes even.
BUCKET_MULTIPLE = 64
# A panorama would render mostly background at great cost: the long side is cropped (around the
# face) to at most this many times the short side.
MAX_BUCKET_ASPECT = 2.0


def fit_to_bucket(photo: Photo, short_side: int) -> Photo:
    """Scale so the short side is `short_side` and both sides are multiples of 64, cropping or
    padding (edge pixels) the long side minimally and keeping the main face in frame. Faces move
    with the picture."""
    import cv2

    short_side = max(BUCKET_MULTIPLE, round(short_side / BUCKET_MULTIPLE) * BUCKET_MULTIPLE)
    height, width = photo.rgb.shape[:2]
    scale = short_side / min(width, height)
    scaled_w, scaled_h = max(1, round(width * scale)), max(1, round(height * scale))
    target_w, target_h = _bucket_side(scaled_w, short_side), _bucket_side(scaled_h, short_side)

    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    scaled = cv2.resize(photo.rgb, (scaled_w, scaled_h), interpolation=interpolation)

    focus = photo.main_face.center if photo.main_face else (width / 2, height / 2)
    offset_x, scaled = _fit_axis(scaled, target_w, focus[0] * scale, axis=1)
    offset_y, scaled = _fit_axis(scaled, target_h, focus[1] * scale, axis=0)

    def move(face: Face) -> Face:
        x0, y0, x1, y1 = face.box
        box = (x0 * scale + offset_x, y0 * scale + offset_y, x1 * scale + offset_x, y1 * scale + offset_y)
        points = {name: (x * scale + offset_x, y * scale + offset_y) for name, (x, y) in face.landmarks.items()}
        return Face(box=box, score=face.score, landmarks=points, landmarks_estimated=face.landmarks_estimated)

    def in_frame(face: Face) -> bool:
        cx, cy = face.center
        return 0 <= cx < target_w and 0 <= cy < target_h

    faces = tuple(f for f in (move(f) for f in photo.faces) if in_frame(f))
    main_face = move(photo.main_face) if photo.main_face is not None else None
    if main_face is not None and not in_frame(main_face):
        main_face = None
    return Photo(rgb=np.ascontiguousarray(scaled), faces=faces, main_face=main_face, source_format=photo.source_format)


def _bucket_side(scaled: int, short_side: int) -> int:
    capped = min(scaled, int(short_side * MAX_BUCKET_ASPECT))
    return max(BUCKET_MULTIPLE, round(capped / BUCKET_MULTIPLE) * BUCKET_MULTIPLE)


def _fit_axis(image: np.ndarray, target: int, focus: float, axis: int) -> tuple[float, np.ndarray]:
    """Crop (centred on `focus` as far as the edges allow) or pad (evenly, repeating edge pixels)
    one axis to `target`. Returns the shift applied to coordinates on that axis."""
    import cv2

    size = image.shape[axis]
    if size > target:
        start = int(round(min(max(focus - target / 2, 0), size - target)))
        index = [slice(None)] * 2
        index[axis] = slice(start, start + target)
        return -float(start), image[tuple(index)]
    if size < target:
        before = (target - size) // 2
        after = target - size - before
        pads = (before, after, 0, 0) if axis == 0 else (0, 0, before, after)
        return float(before), cv2.copyMakeBorder(image, *pads, borderType=cv2.BORDER_REPLICATE)
    return 0.0, image
