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

# Contours a face mesh adds, each a run of points in image order (left to right; lids and lips
# from corner to corner). They are stored in `Face.landmarks` as "<contour>.<i>" so they travel
# wherever a face's named points already do (the job record, resizing) with no new field.
# "left"/"right" are the image's sides, as for the eyes above.
CONTOUR_LENGTHS = {
    "outer_lip_upper": 11,
    "outer_lip_lower": 11,
    "inner_lip_upper": 11,
    "inner_lip_lower": 11,
    "left_upper_lid": 9,
    "left_lower_lid": 9,
    "right_upper_lid": 9,
    "right_lower_lid": 9,
    "left_brow": 5,
    "right_brow": 5,
    "jaw": 21,  # cheek to cheek under the chin
}


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
    def has_contours(self) -> bool:
        """True when a face mesh gave the lip, lid, brow and jaw contours (not estimates)."""
        return all(f"{name}.{length - 1}" in self.landmarks for name, length in CONTOUR_LENGTHS.items())

    def contour(self, name: str) -> np.ndarray:
        """The named contour as an (n, 2) float array of image (x, y); KeyError when absent."""
        return np.array([self.landmarks[f"{name}.{i}"] for i in range(CONTOUR_LENGTHS[name])], dtype=np.float64)

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
class Phoneme:
    """One phoneme of synthesised speech and when it is heard (seconds from the audio's start)."""

    symbol: str  # espeak-ng's mnemonic, e.g. "m", "i:", "aI"; "_" and "_:" are pauses
    start: float
    end: float


@dataclass(frozen=True)
class Audio:
    samples: np.ndarray  # (N,) float32 mono in [-1, 1]
    sample_rate: int = 16_000
    source_format: str = field(default="", compare=False)
    # What is said and when, where the speech was synthesised here; empty for recordings.
    phonemes: tuple[Phoneme, ...] = field(default=(), compare=False)

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate
