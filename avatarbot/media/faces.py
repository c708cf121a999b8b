"""Find faces in a photo and name the points an engine needs (eyes, nose, mouth, chin, and the
lip, lid, brow and jaw contours when a face mesh is available).

MediaPipe's BlazeFace detectors and face mesh (`face_mesh.py`) come first: they find turned and
grayscale faces that dlib's frontal HOG detector misses, and give real contours. When MediaPipe
finds no face, the detectors below still get a say, and the mesh is tried on what they find.

dlib's HOG detector and its free 5-point shape predictor (from `face-recognition-models`) do
the finding. We deliberately do not load dlib's 68-point model: its training data (iBUG 300-W)
is licensed for non-commercial use only. The 5 points give the eyes and the base of the nose;
the mouth and chin are placed from face proportions and the lip line is then snapped to the
darkest horizontal line below the nose, which is where the lips meet in almost every face.

When dlib can't be imported, OpenCV's Haar cascades (shipped with opencv-python-headless < 5)
find the face and eyes instead, and the rest is estimated the same way.

Detection runs on a downscaled copy for speed; every coordinate returned is in the pixels of the
image passed in.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import threading
from pathlib import Path

import numpy as np

from avatarbot.media import face_mesh
from avatarbot.media.types import LANDMARK_NAMES, Face

log = logging.getLogger(__name__)

# HOG finds faces from about 80 px across; 800 px keeps a selfie's face well above that and a
# detection under ~0.1 s on one core. When that finds nothing, a second look at up to 1600 px
# catches smaller faces (group shots, a face far off) at about 4x the cost.
DETECT_MAX_SIDE = 800
DETECT_RETRY_MAX_SIDE = 1600
# Small photos are searched again at 2x when nothing is found; that pass also finds false
# faces in textures, so it must score clearly above dlib's threshold.
UPSAMPLE_BELOW_SIDE = 640
UPSAMPLED_MIN_SCORE = 0.5

# Face proportions, in units of the distance from the eye line down to the base of the nose
# (the subnasale), from adult anthropometric averages: lips meet ~1.45x below the eyes, the
# upper lip's top edge ~0.18 above that line, the lower lip's bottom edge ~0.25 below it, the
# chin ~2.4x below the eyes.
LIP_LINE_DEPTH = 1.45
UPPER_LIP_ABOVE_LINE = 0.18
LOWER_LIP_BELOW_LINE = 0.25
CHIN_DEPTH = 2.40
# The upper lip never reaches the nose, and the chin stays below the lower lip.
UPPER_LIP_MIN_DEPTH = 1.08
CHIN_BELOW_LIP_LINE_MIN = 0.8
# Mouth width as a fraction of the distance between the eye centres.
MOUTH_WIDTH_PER_EYE_DISTANCE = 0.80
# Where the lip line is searched, in the same units (between the nose and the chin).
LIP_SEARCH_DEPTHS = (1.15, 1.85)
# The darkest row must be this much darker (0..255 grey levels) than the search window's median
# to count as a lip line; otherwise the proportional estimate stands.
LIP_LINE_MIN_CONTRAST = 8.0

# Without any eye points (Haar found no eyes), eyes sit ~38% down the face box, 30% in from
# each side, and the nose base ~72% down (Haar boxes run from mid-forehead to below the mouth).
BOX_EYE_DEPTH = 0.38
BOX_EYE_INSET = 0.30
BOX_NOSE_DEPTH = 0.72


def detect_faces(rgb: np.ndarray, *, backend: str = "auto") -> list[Face]:
    """Every face found, best score first. `backend`: "auto" (MediaPipe, else dlib, else OpenCV,
    with the mesh on whatever is found), "mediapipe", "dlib", "opencv" (the last two without mesh)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {rgb.shape}")
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    gray = _to_gray(rgb)
    if backend == "auto":
        faces = _detect_auto(rgb, gray)
    elif backend == "mediapipe":
        faces = _detect_mediapipe(rgb, gray)
    elif backend == "dlib":
        faces = _detect_dlib(gray)
    elif backend == "opencv":
        faces = _detect_opencv(gray)
    else:
        raise ValueError(f"unknown face detector backend {backend!r}")
    return sorted(faces, key=lambda f: f.score, reverse=True)


def pick_main_face(faces, width: int, height: int) -> Face | None:
    """The face the user most likely means: large and near the middle of the picture."""
    if not faces:
        return None
    half_diagonal = math.hypot(width, height) / 2

    def importance(face: Face) -> float:
        off_centre = math.hypot(face.center[0] - width / 2, face.center[1] - height / 2) / half_diagonal
        return face.width * face.height * (1.0 - 0.5 * min(off_centre, 1.0))

    return max(faces, key=importance)


# --- MediaPipe (mesh) ----------------------------------------------------------------------------


def _detect_auto(rgb: np.ndarray, gray: np.ndarray) -> list[Face]:
    if not face_mesh.available():
        return _detect_dlib(gray) if _dlib_available() else _detect_opencv(gray)
    faces = _detect_mediapipe(rgb, gray)
    if not faces:  # BlazeFace missed it: let the older detectors look, and mesh what they find
        found = _detect_dlib(gray) if _dlib_available() else _detect_opencv(gray)
        faces = [_with_mesh(rgb, face) or face for face in found]
    return faces


def _detect_mediapipe(rgb: np.ndarray, gray: np.ndarray) -> list[Face]:
    faces = []
    for box, score in face_mesh.detect_boxes(rgb):
        estimate = _estimated_from_box(gray, box, score)
        faces.append(_with_mesh(rgb, estimate) or estimate)
    return faces


def _with_mesh(rgb: np.ndarray, face: Face) -> Face | None:
    """`face` with landmarks and box from the face mesh, or None when the mesh finds no face."""
    points = face_mesh.mesh_points(rgb, face.box)
    if points is None:
        return None

    def named(index: int) -> tuple[float, float]:
        return (float(points[index, 0]), float(points[index, 1]))

    landmarks = {}
    for contour, indices in face_mesh.MESH_INDICES.items():
        for i, index in enumerate(indices):
            landmarks[f"{contour}.{i}"] = named(index)
    for side in ("left", "right"):
        lids = [points[list(face_mesh.MESH_INDICES[f"{side}_{lid}_lid"])] for lid in ("upper", "lower")]
        centre = np.concatenate(lids).mean(axis=0)
        landmarks[f"{side}_eye"] = (float(centre[0]), float(centre[1]))
    outer = face_mesh.MESH_INDICES["outer_lip_upper"]
    landmarks.update(
        nose=named(face_mesh.NOSE_BASE),
        mouth_left=named(outer[0]),
        mouth_right=named(outer[-1]),
        upper_lip=named(outer[len(outer) // 2]),
        lower_lip=named(face_mesh.MESH_INDICES["outer_lip_lower"][len(outer) // 2]),
        chin=named(face_mesh.CHIN),
    )
    box = (*points.min(axis=0), *points.max(axis=0))
    height, width = rgb.shape[:2]
    return Face(box=_clip_box(tuple(map(float, box)), (height, width)), score=face.score, landmarks=landmarks)


def _estimated_from_box(gray: np.ndarray, box, score: float) -> Face:
    """Landmarks from face proportions alone, for a box whose mesh fails."""
    x0, y0, x1, y1 = box
    left_eye = np.array([x0 + BOX_EYE_INSET * (x1 - x0), y0 + BOX_EYE_DEPTH * (y1 - y0)])
    right_eye = np.array([x1 - BOX_EYE_INSET * (x1 - x0), y0 + BOX_EYE_DEPTH * (y1 - y0)])
    nose = np.array([(x0 + x1) / 2, y0 + BOX_NOSE_DEPTH * (y1 - y0)])
    landmarks = _complete_landmarks(gray, left_eye, right_eye, nose)
    return Face(box=_clip_box(box, gray.shape), score=score, landmarks=landmarks, landmarks_estimated=True)


# --- dlib ----------------------------------------------------------------------------------------


def _dlib_available() -> bool:
    return importlib.util.find_spec("dlib") is not None and _five_point_model_path() is not None


def _five_point_model_path() -> Path | None:
    # face_recognition_models' __init__ imports pkg_resources (often absent), so find its
    # files without importing it.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "models" / "shape_predictor_5_face_landmarks.dat"
        if candidate.is_file():
            return candidate
    return None


# dlib's detector and OpenCV's cascades are not safe to call from two threads at once (seen: a
# segfault when the bots decoded two photos together), so each thread gets its own copies.
_per_thread = threading.local()


def _dlib_models():
    if not hasattr(_per_thread, "dlib"):
        import dlib

        _per_thread.dlib = dlib.get_frontal_face_detector(), dlib.shape_predictor(str(_five_point_model_path()))
    return _per_thread.dlib


def _detect_dlib(gray: np.ndarray) -> list[Face]:
    import dlib

    detector, predictor = _dlib_models()
    small, scale = _downscale(gray, DETECT_MAX_SIDE)
    rects, scores, _ = detector.run(small, 0, 0.0)
    found = list(zip(rects, scores, strict=True))
    if not found and scale < 1.0:
        small, scale = _downscale(gray, DETECT_RETRY_MAX_SIDE)
        rects, scores, _ = detector.run(small, 0, 0.0)
        found = list(zip(rects, scores, strict=True))
    if not found and max(small.shape) < UPSAMPLE_BELOW_SIDE:
        rects, scores, _ = detector.run(small, 1, 0.0)
        found = [(r, s) for r, s in zip(rects, scores, strict=True) if s >= UPSAMPLED_MIN_SCORE]

    faces = []
    for rect, score in found:
        box = (rect.left() / scale, rect.top() / scale, rect.right() / scale, rect.bottom() / scale)
        full_rect = dlib.rectangle(*(int(round(v)) for v in box))
        shape = predictor(gray, full_rect)
        points = np.array([(shape.part(i).x, shape.part(i).y) for i in range(5)], dtype=np.float64)
        # The 5-point model: 0-1 outer/inner corner of the eye on the image's right,
        # 2-3 outer/inner corner of the eye on the image's left, 4 the base of the nose.
        left_eye = points[2:4].mean(axis=0)
        right_eye = points[0:2].mean(axis=0)
        nose = points[4]
        landmarks = _complete_landmarks(gray, left_eye, right_eye, nose)
        faces.append(
            Face(box=_clip_box(box, gray.shape), score=float(score), landmarks=landmarks, landmarks_estimated=True)
        )
    return faces


# --- OpenCV fallback -----------------------------------------------------------------------------


def _haar_cascades():
    if not hasattr(_per_thread, "haar"):
        _per_thread.haar = _load_haar_cascades()
    return _per_thread.haar


def _load_haar_cascades():
    import cv2

    root = Path(cv2.data.haarcascades)
    face = cv2.CascadeClassifier(str(root / "haarcascade_frontalface_default.xml"))
    eye = cv2.CascadeClassifier(str(root / "haarcascade_eye.xml"))
    if face.empty():
        raise RuntimeError(f"OpenCV's Haar cascades are missing under {root} (opencv >= 5 no longer ships them)")
    return face, eye


def _detect_opencv(gray: np.ndarray) -> list[Face]:
    import cv2

    face_cascade, eye_cascade = _haar_cascades()
    small, scale = _downscale(gray, DETECT_MAX_SIDE)
    small = cv2.equalizeHist(small)
    min_side = max(24, min(small.shape) // 12)
    boxes, _, weights = face_cascade.detectMultiScale3(
        small, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side), outputRejectLevels=True
    )
    faces = []
    for (x, y, w, h), weight in zip(boxes, np.ravel(weights) if len(boxes) else [], strict=True):
        x0, y0, x1, y1 = x / scale, y / scale, (x + w) / scale, (y + h) / scale
        left_eye, right_eye = _haar_eyes(eye_cascade, small[y : y + h // 2 + h // 10, x : x + w], x, y, w, scale)
        if left_eye is None:
            left_eye = np.array([x0 + BOX_EYE_INSET * (x1 - x0), y0 + BOX_EYE_DEPTH * (y1 - y0)])
            right_eye = np.array([x1 - BOX_EYE_INSET * (x1 - x0), y0 + BOX_EYE_DEPTH * (y1 - y0)])
        eye_mid = (left_eye + right_eye) / 2
        nose = np.array([eye_mid[0], y0 + BOX_NOSE_DEPTH * (y1 - y0)])
        landmarks = _complete_landmarks(gray, left_eye, right_eye, nose)
        faces.append(
            Face(
                box=_clip_box((x0, y0, x1, y1), gray.shape),
                score=float(weight),
                landmarks=landmarks,
                landmarks_estimated=True,
            )
        )
    return faces


def _haar_eyes(eye_cascade, upper_face: np.ndarray, x: int, y: int, w: int, scale: float):
    """The two eye centres in full-res pixels, or (None, None) unless one is found per side."""
    eyes = eye_cascade.detectMultiScale(upper_face, scaleFactor=1.1, minNeighbors=4, minSize=(max(8, w // 10),) * 2)
    left = [e for e in eyes if e[0] + e[2] / 2 < w / 2]
    right = [e for e in eyes if e[0] + e[2] / 2 >= w / 2]
    if not left or not right:
        return None, None

    def centre(e):
        biggest = max(e, key=lambda b: b[2] * b[3])
        return np.array([(x + biggest[0] + biggest[2] / 2) / scale, (y + biggest[1] + biggest[3] / 2) / scale])

    return centre(left), centre(right)


# --- landmarks from eyes + nose ------------------------------------------------------------------


def _complete_landmarks(gray: np.ndarray, left_eye: np.ndarray, right_eye: np.ndarray, nose: np.ndarray) -> dict:
    """Place mouth, lips and chin in the face's own frame (so a tilted head works), then snap the
    lip line to the image."""
    across = right_eye - left_eye
    eye_distance = float(np.linalg.norm(across)) or 1.0
    across = across / eye_distance
    down = np.array([-across[1], across[0]])  # perpendicular, pointing from the eyes to the mouth
    eye_mid = (left_eye + right_eye) / 2
    nose_depth = float(np.dot(nose - eye_mid, down))
    if nose_depth <= 0.2 * eye_distance:  # implausible (profile or a bad fit): use the typical ratio
        nose_depth = 0.6 * eye_distance
    # The mouth sits below the nose along `down`, starting from the eye midline.
    axis_origin = eye_mid + across * float(np.dot(nose - eye_mid, across))

    def at(depth: float, sideways: float = 0.0) -> tuple[float, float]:
        p = axis_origin + down * depth * nose_depth + across * sideways
        return (float(p[0]), float(p[1]))

    lip_depth = _find_lip_line(gray, axis_origin, across, down, nose_depth, eye_distance)
    chin_depth = max(CHIN_DEPTH + (lip_depth - LIP_LINE_DEPTH) / 2, lip_depth + CHIN_BELOW_LIP_LINE_MIN)
    half_mouth = MOUTH_WIDTH_PER_EYE_DISTANCE * eye_distance / 2
    landmarks = {
        "left_eye": (float(left_eye[0]), float(left_eye[1])),
        "right_eye": (float(right_eye[0]), float(right_eye[1])),
        "nose": (float(nose[0]), float(nose[1])),
        "mouth_left": at(lip_depth, -half_mouth),
        "mouth_right": at(lip_depth, +half_mouth),
        "upper_lip": at(max(lip_depth - UPPER_LIP_ABOVE_LINE, UPPER_LIP_MIN_DEPTH)),
        "lower_lip": at(lip_depth + LOWER_LIP_BELOW_LINE),
        "chin": at(chin_depth),
    }
    assert tuple(landmarks) == LANDMARK_NAMES
    return landmarks


def _find_lip_line(gray, origin, across, down, nose_depth, eye_distance) -> float:
    """Depth (in nose-depth units) of the darkest horizontal line between nose and chin, or the
    proportional estimate when no line stands out."""
    lo, hi = LIP_SEARCH_DEPTHS
    depths = np.linspace(lo, hi, 48)
    offsets = np.linspace(-0.25, 0.25, 24) * eye_distance  # the middle half of the mouth
    pts = (
        origin[None, None, :]
        + down[None, None, :] * (depths[:, None, None] * nose_depth)
        + across[None, None, :] * offsets[None, :, None]
    )
    xs = np.clip(np.rint(pts[..., 0]).astype(int), 0, gray.shape[1] - 1)
    ys = np.clip(np.rint(pts[..., 1]).astype(int), 0, gray.shape[0] - 1)
    rows = gray[ys, xs].astype(np.float32).mean(axis=1)
    rows = np.convolve(rows, np.ones(3) / 3, mode="same")[1:-1]
    darkest = int(np.argmin(rows))
    if np.median(rows) - rows[darkest] < LIP_LINE_MIN_CONTRAST:
        return LIP_LINE_DEPTH
    return float(depths[1:-1][darkest])


# --- helpers -------------------------------------------------------------------------------------


def _to_gray(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2GRAY)


def _downscale(gray: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    import cv2

    scale = min(1.0, max_side / max(gray.shape))
    if scale >= 1.0:
        return gray, 1.0
    size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA), scale


def _clip_box(box, shape) -> tuple[float, float, float, float]:
    h, w = shape[:2]
    x0, y0, x1, y1 = box
    return (float(max(0, x0)), float(max(0, y0)), float(min(w, x1)), float(min(h, y1)))
