"""The face's own coordinate frame, and rectangular regions of the photo to warp.

Warps are designed in face coordinates: u along the eye line (towards the image's right eye),
v down the face, in pixels, origin at the mouth centre. A tilted head then needs no special
case: "the jaw drops" is always +v.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatarbot.media.types import Face


@dataclass(frozen=True)
class Region:
    """A clipped, axis-aligned rectangle of the image: rows y0:y1, columns x0:x1."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0

    def union(self, other: Region) -> Region:
        return Region(min(self.x0, other.x0), min(self.y0, other.y0), max(self.x1, other.x1), max(self.y1, other.y1))


@dataclass(frozen=True)
class FaceAxes:
    origin_x: float
    origin_y: float
    cos: float
    sin: float
    eye_distance: float  # inter-ocular distance in pixels: the unit of every face proportion

    @classmethod
    def of(cls, face: Face) -> FaceAxes:
        (lx, ly), (rx, ry) = face.landmarks["left_eye"], face.landmarks["right_eye"]
        eye_distance = float(np.hypot(rx - lx, ry - ly))
        if eye_distance < 1.0:  # a broken detection; fall back on the box and an upright face
            eye_distance, angle = max(4.0, 0.42 * face.width), 0.0
        else:
            angle = float(np.arctan2(ry - ly, rx - lx))
        (mlx, mly), (mrx, mry) = face.landmarks["mouth_left"], face.landmarks["mouth_right"]
        return cls((mlx + mrx) / 2, (mly + mry) / 2, float(np.cos(angle)), float(np.sin(angle)), eye_distance)

    def to_face(self, x, y):
        """Image (x, y) to face (u, v); works on scalars and arrays."""
        dx, dy = x - self.origin_x, y - self.origin_y
        return dx * self.cos + dy * self.sin, -dx * self.sin + dy * self.cos

    def to_image(self, u, v):
        return self.origin_x + u * self.cos - v * self.sin, self.origin_y + u * self.sin + v * self.cos

    def direction_to_image(self, du, dv):
        """A displacement in face axes as an image displacement (rotation only, no origin)."""
        return du * self.cos - dv * self.sin, du * self.sin + dv * self.cos

    def landmarks(self, face: Face) -> dict[str, tuple[float, float]]:
        return {name: tuple(map(float, self.to_face(x, y))) for name, (x, y) in face.landmarks.items()}

    def region(self, u0: float, u1: float, v0: float, v1: float, image_shape) -> Region | None:
        """The image rectangle that holds the face-frame rectangle [u0,u1] x [v0,v1], clipped."""
        us, vs = np.array([u0, u1, u0, u1]), np.array([v0, v0, v1, v1])
        xs, ys = self.to_image(us, vs)
        height, width = image_shape[:2]
        x0, x1 = max(0, int(np.floor(xs.min()))), min(width, int(np.ceil(xs.max())) + 1)
        y0, y1 = max(0, int(np.floor(ys.min()))), min(height, int(np.ceil(ys.max())) + 1)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        return Region(x0, y0, x1, y1)

    def grid(self, region: Region, step: int = 1):
        """Coordinates of a region's pixels: local (x, y) for cv2.remap, and face (u, v). With
        `step` > 1, of a coarse grid about `step` pixels apart whose samples sit exactly where
        `cv2.resize(..., region size, INTER_LINEAR)` reads them, so a field computed on it and
        resized lines up with the pixels."""
        height, width = region.shape
        if step == 1:
            ys, xs = np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32)
        else:
            ys, xs = (
                ((np.arange(-(-n // step)) + 0.5) * n / -(-n // step) - 0.5).astype(np.float32) for n in (height, width)
            )
        local_x, local_y = np.meshgrid(xs, ys)
        u, v = self.to_face(local_x + region.x0, local_y + region.y0)
        return local_x, local_y, u.astype(np.float32), v.astype(np.float32)


def smoothstep(edge0: float, edge1, x):
    """0 below edge0, 1 above edge1, a smooth S between (edge1 may be an array)."""
    t = np.clip((x - edge0) / np.maximum(np.asarray(edge1) - edge0, 1e-6), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def piecewise_inverse(v: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Where each output position `v` samples from, when knots at `source` (K, ...) move to
    `target` (K, ..., non-decreasing along K) and the skin between two knots stretches linearly.
    The first and last knots must not move; outside them nothing moves. A span whose target
    knots meet vanishes (a closed mouth, a shut eye)."""
    last = len(source) - 1
    # Each position's span: the last knot at or above it. Counting beats a loop over spans.
    span = (v[None] >= target).sum(axis=0) - 1
    inside = (span >= 0) & (span < last)
    # Flat indices into the (K, ...) arrays: plain fancy indexing is the quickest gather here.
    at = np.clip(span, 0, last - 1) * v.size + np.arange(v.size).reshape(v.shape)
    target, source = target.reshape(-1), source.reshape(-1)
    t0, t1, s0, s1 = target[at], target[at + v.size], source[at], source[at + v.size]
    mapped = s0 + (v - t0) * (s1 - s0) / np.maximum(t1 - t0, 1e-3)
    return np.where(inside, mapped, v)
