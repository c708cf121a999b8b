"""Upstream's face detector as the hunyuan engine uses it: a TorchScript stand-in with the real
module's interface (image 0..1 at a 416-px short side, cell grids of strides 8/16/32 -> rows of
cx, cy, w, h, objectness, 10 landmark values, class score) and hand-made detections."""

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")

from avatarbot.avatar.hunyuan import schedule
from avatarbot.avatar.hunyuan.face_detector import DETECTOR_FILE, UpstreamFaceDetector, input_size

pytestmark = pytest.mark.gpu


class FaceDetectorStandIn(torch.nn.Module):
    """Returns fixed candidate rows (box in fractions of the input) when it is called the way the
    real detector must be (three grids matching the input, pixels in 0..1), and nothing else."""

    def __init__(self, rows: torch.Tensor):
        super().__init__()
        self.register_buffer("rows", rows)

    def forward(self, image: torch.Tensor, grids: list[torch.Tensor]) -> torch.Tensor:
        height, width = image.shape[2], image.shape[3]
        called_right = len(grids) == 3 and bool(image.max() <= 1.0) and height % 32 == 0 and width % 32 == 0
        for index, stride in enumerate([8, 16, 32]):
            grid = grids[min(index, len(grids) - 1)]
            called_right = called_right and grid.shape[2] == height // stride and grid.shape[3] == width // stride
            called_right = called_right and bool(grid[0, 0, -1, -1, 0] == width // stride - 1)
        out = self.rows.clone()
        out[:, 0:4] = out[:, 0:4] * torch.tensor([width, height, width, height], dtype=out.dtype)
        if not called_right:
            out[:, 4] = 0.0
        return out[None]


def candidate(cx, cy, w, h, objectness, face_score=1.0):
    return [cx, cy, w, h, objectness] + [0.5] * 10 + [face_score]


# Strongest first after NMS: A (small), B (largest), C (middle). D overlaps B and is weaker (NMS
# drops it); E is below the objectness threshold; F passes objectness but not objectness x class.
CANDIDATES = torch.tensor(
    [
        candidate(0.20, 0.30, 0.10, 0.10, 0.95),  # A
        candidate(0.60, 0.50, 0.30, 0.40, 0.90),  # B
        candidate(0.62, 0.52, 0.30, 0.40, 0.80),  # D
        candidate(0.85, 0.80, 0.15, 0.20, 0.85),  # C
        candidate(0.40, 0.80, 0.50, 0.50, 0.40),  # E
        candidate(0.40, 0.20, 0.50, 0.50, 0.90, face_score=0.3),  # F
    ]
)


def save_stand_in(directory, rows=CANDIDATES):
    directory.mkdir(parents=True, exist_ok=True)
    torch.jit.script(FaceDetectorStandIn(rows)).save(str(directory / DETECTOR_FILE))
    return directory


def test_input_size_follows_upstreams_rule():
    assert input_size(80, 64) == (544, 416)  # 416 / 64 = 6.5: 520 -> 544, 416 -> 416
    assert input_size(1280, 720) == (768, 416)  # 739.6 -> 768
    assert input_size(704, 704) == (416, 416)


def test_faces_pass_confidence_and_nms_and_return_in_photo_pixels(tmp_path):
    detector = UpstreamFaceDetector.load(save_stand_in(tmp_path))
    faces = detector.faces(np.full((64, 80, 3), 128, dtype=np.uint8))
    assert [round(f[4], 2) for f in faces] == [0.95, 0.90, 0.85]  # D (overlap), E, F dropped
    x0, y0, x1, y1, _ = faces[1]  # B: centre (0.6, 0.5), size (0.3, 0.4) of the photo
    assert (x0, y0, x1, y1) == pytest.approx((0.45 * 80, 0.3 * 64, 0.75 * 80, 0.7 * 64), abs=1e-3)


def test_main_face_is_upstreams_pick(tmp_path):
    """Upstream compares each face with the first one only: of A (small), B (largest), C (middle),
    it keeps C, the last face larger than A."""
    detector = UpstreamFaceDetector.load(save_stand_in(tmp_path))
    box = detector.main_box(np.full((64, 80, 3), 128, dtype=np.uint8))
    assert box == pytest.approx(((0.85 - 0.075) * 80, (0.8 - 0.1) * 64, (0.85 + 0.075) * 80, (0.8 + 0.1) * 64))
    two = torch.stack([CANDIDATES[0], CANDIDATES[1]])
    detector = UpstreamFaceDetector.load(save_stand_in(tmp_path / "two", two))
    assert detector.main_box(np.full((64, 80, 3), 128, dtype=np.uint8))[2] == pytest.approx(0.75 * 80)  # B


def test_no_face_means_the_whole_frame(tmp_path):
    none = CANDIDATES[4:5]  # only E, below the threshold
    detector = UpstreamFaceDetector.load(save_stand_in(tmp_path, none))
    assert detector.main_box(np.zeros((64, 64, 3), dtype=np.uint8)) is None
    assert schedule.face_mask_box(None, 64, 64) == (0, 0, 64, 64)


def test_face_mask_box_is_upstreams_arithmetic():
    """get_facemask: centre and half sizes floor-divided, then truncated to pixels."""
    assert schedule.face_mask_box((10.5, 7.0, 21.5, 15.0), 64, 64) == (0, 0, 32, 23)  # cx 16, w 33 -> 16-16
    assert schedule.face_mask_box((30.0, 20.0, 50.0, 44.0), 64, 64) == (10, 0, 64, 64)


def test_pipeline_takes_the_mask_box_from_upstreams_detector_when_loaded(tmp_path):
    from test_hunyuan_pipeline import _photo, tiny_pipeline

    pipeline = tiny_pipeline()
    photo = _photo()
    pixels = pipeline.render_pixels(photo.rgb, 64)
    ours = photo.main_face.box
    assert pipeline.face_box(photo.rgb, pixels, ours) == pytest.approx(
        (ours[0] * 64 / 80, ours[1], ours[2] * 64 / 80, ours[3])
    )
    pipeline.face_detector = UpstreamFaceDetector.load(save_stand_in(tmp_path))
    assert pipeline.face_box(photo.rgb, pixels, ours) == pipeline.face_detector.main_box(pixels)
