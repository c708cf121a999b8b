"""The checked, decoded forms that media hands to the rest of the program.

Everything past `media/` works on these, never on raw bytes: if you hold a `Photo` or an
`Audio`, it was decoded, bounded and checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Named facial points every `Face` carries. Detectors that give fewer points (or none) get the
# rest estimated from face proportions, with `landmarks_estimated=True`.
LANDMARK_NAMES = (
    "left_eye",  # the eye on the image's left
    "right_eye",
    "nose",
    "mouth_left",
    "mouth_right",
    "upper_lip",
    "lower_lip",
    "chin",
)


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels of the photo
    score: float
    landmarks: dict[str, tuple[float, float]]  # LANDMARK_NAMES -> (x, y) in pixels
    landmarks_estimated: bool = False

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def center(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)


@dataclass(frozen=True)
class Photo:
    rgb: np.ndarray  # (H, W, 3) uint8, EXIF orientation applied
    faces: tuple[Face, ...] = ()
    main_face: Face | None = None
    source_format: str = ""  # e.g. "JPEG", for logs

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


@dataclass(frozen=True)
class Audio:
    samples: np.ndarray  # (N,) float32 mono in [-1, 1]
    sample_rate: int = 16_000
    source_format: str = field(default="", compare=False)

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate
