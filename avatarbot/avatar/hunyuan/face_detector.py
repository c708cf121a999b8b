"""Upstream's face detector (det_align/detface.pt), run exactly as upstream runs it for the face mask.

The audio adapters only write inside the face mask, so the box that mask comes from shapes every
render. The model was trained with boxes from this detector; ours (avatarbot.media.faces, dlib)
misses three-quarter faces, and then the whole frame would move. When the converted weights carry
the detector (`face_detector/detface.pt`), the hunyuan pipeline uses it; otherwise it falls back on
the box the job brings from our own detector (which also serves lite).

The rules, from hymm_sp/data_kits/face_align/detface.py, align.py and audio_preprocessor.py:
- the RGB photo (at render size) is resized with bilinear interpolation so its short side is 416,
  each side rounded up to a multiple of 32, scaled to 0..1, and given to the TorchScript module
  with the (x, y) cell grids of strides 8, 16 and 32;
- each output row is (cx, cy, w, h, objectness, 10 landmark values, class scores): rows with
  objectness above 0.5 are kept, confidence = objectness x class score, rows with confidence
  above 0.5 go through non-maximum suppression at IoU 0.45, strongest first;
- with several faces upstream means to take the largest, but compares each face with the first
  (its running maximum is never updated): the last face larger than the first wins. We keep that.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from avatarbot.avatar.hunyuan.weights import UPSTREAM_FACE_DETECTOR_FILE as DETECTOR_FILE

INPUT_SHORT_SIDE = 416
INPUT_MULTIPLE = 32
GRID_STRIDES = (8, 16, 32)
CONFIDENCE = 0.5
NMS_IOU = 0.45
LANDMARK_COLUMNS = 10
CLASS_OFFSET = 4096  # upstream's per-class box offset before NMS (max_wh)


def input_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) the detector sees: short side 416, sides rounded up to multiples of 32."""
    ratio = INPUT_SHORT_SIDE / min(height, width)
    return (
        int(width * ratio + INPUT_MULTIPLE - 1) // INPUT_MULTIPLE * INPUT_MULTIPLE,
        int(height * ratio + INPUT_MULTIPLE - 1) // INPUT_MULTIPLE * INPUT_MULTIPLE,
    )


def cell_grids(width: int, height: int) -> list[torch.Tensor]:
    """(1, 1, rows, cols, 2) tensors of (x, y) cell indices, one per stride."""
    grids = []
    for stride in GRID_STRIDES:
        ys, xs = torch.meshgrid(torch.arange(height // stride), torch.arange(width // stride), indexing="ij")
        grids.append(torch.stack((xs, ys), 2)[None, None].float())
    return grids


def non_max_suppression(boxes: torch.Tensor, scores: torch.Tensor, iou: float) -> list[int]:
    """Indices kept by greedy NMS, strongest first (what torchvision.ops.nms returns). Written
    here because torchvision is not a dependency: its wheels are built per torch version and
    would have to be pinned with it, for a loop over a handful of candidate faces."""
    order = torch.argsort(scores, descending=True, stable=True).tolist()
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    kept: list[int] = []
    while order:
        best, order = order[0], order[1:]
        kept.append(best)
        if not order:
            break
        rest = torch.tensor(order)
        top_left = torch.maximum(boxes[best, :2], boxes[rest, :2])
        bottom_right = torch.minimum(boxes[best, 2:], boxes[rest, 2:])
        inter = (bottom_right - top_left).clamp(min=0).prod(dim=1)
        overlap = inter / (areas[best] + areas[rest] - inter)
        order = [i for i, o in zip(order, overlap.tolist(), strict=True) if o <= iou]
    return kept


def detections(prediction: torch.Tensor) -> torch.Tensor:
    """(n, 5) rows (x0, y0, x1, y1, confidence) in detector-input pixels, strongest first."""
    rows = prediction[0]
    rows = rows[rows[:, 4] > CONFIDENCE]
    if not len(rows):
        return rows.new_zeros((0, 5))
    class_scores = rows[:, 5 + LANDMARK_COLUMNS :] * rows[:, 4:5]
    confidence, label = class_scores.max(dim=1)
    centre, size = rows[:, :2], rows[:, 2:4]
    boxes = torch.cat([centre - size / 2, centre + size / 2], dim=1)
    keep = confidence > CONFIDENCE
    boxes, confidence, label = boxes[keep], confidence[keep], label[keep]
    kept = non_max_suppression(boxes + label[:, None].float() * CLASS_OFFSET, confidence, NMS_IOU)
    return torch.cat([boxes[kept], confidence[kept, None]], dim=1)


def upstream_main_face(boxes: list[tuple[float, float, float, float]]) -> int:
    """Index of the face upstream picks (see the module docstring); boxes are (x0, y0, x1, y1)."""
    chosen = 0
    first_area = (boxes[0][2] - boxes[0][0]) * (boxes[0][3] - boxes[0][1])
    for index, (x0, y0, x1, y1) in enumerate(boxes[1:], start=1):
        if (x1 - x0) * (y1 - y0) > first_area:
            chosen = index
    return chosen


class UpstreamFaceDetector:
    def __init__(self, module: torch.jit.ScriptModule, device: str | torch.device = "cpu"):
        self.module = module.eval()
        self.device = torch.device(device)

    @classmethod
    def load(cls, directory: Path) -> UpstreamFaceDetector:
        return cls(torch.jit.load(str(Path(directory) / DETECTOR_FILE), map_location="cpu"))

    def to(self, device) -> UpstreamFaceDetector:
        self.device = torch.device(device)
        self.module.to(self.device)
        return self

    @torch.no_grad()
    def faces(self, rgb: np.ndarray) -> list[tuple[float, float, float, float, float]]:
        """(x0, y0, x1, y1, confidence) of every face in `rgb` pixels, strongest first."""
        height, width = rgb.shape[:2]
        in_w, in_h = input_size(width, height)
        resized = cv2.resize(rgb, (in_w, in_h), interpolation=cv2.INTER_LINEAR)
        pixels = torch.from_numpy(resized).permute(2, 0, 1)[None].float().div(255).to(self.device)
        grids = [grid.to(self.device) for grid in cell_grids(in_w, in_h)]
        found = detections(self.module(pixels, grids).float().cpu())
        scale = torch.tensor([width / in_w, height / in_h] * 2)
        return [(*(row[:4] * scale).tolist(), float(row[4])) for row in found]

    def main_box(self, rgb: np.ndarray) -> tuple[float, float, float, float] | None:
        """The box upstream's face mask is grown from, or None without a face."""
        faces = self.faces(rgb)
        if not faces:
            return None
        return faces[upstream_main_face([face[:4] for face in faces])][:4]
