"""Head motion (roll about the neck, sway, nod) and lip rounding, as one remap of the head region.

Only the head moves: its displacement is full inside an ellipse around head and hair and fades
to nothing a little outside it, so the background and shoulders stay put (a picture that moves
as a whole reads as a shaking photo, not a living person) and no border is ever uncovered. The
fade band bends a few pixels of background, which the eye does not notice at these amplitudes.

Displacements are small (a few pixels), so rotation is linearised and the fields, like the
face's, are computed once and scaled per frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from avatarbot.avatar.lite.face_warp import FaceWarp
from avatarbot.avatar.lite.geometry import Region, smoothstep

# The head as an ellipse in face coordinates, in units of inter-ocular distance (iod): it spans
# from the chin up to the top of the hair, and sideways past the ears.
HEAD_TOP_ABOVE_EYES_IOD = 1.5
HEAD_HALF_WIDTH_IOD = 1.3
FADE_END = 1.5  # the motion fades from the ellipse's edge (1.0) out to this radius
NECK_BELOW_CHIN_IOD = 0.6  # the head turns about a point in the neck

# Lip rounding ("oo" narrows the mouth, "ee" widens it): the mouth corners move this fraction of
# half the mouth's width at full rounding.
ROUNDING_SQUEEZE = 0.22
ROUNDING_NEGLIGIBLE = 1e-3  # where the squeeze's reach falls below this, it is left out


class HeadWarp:
    def __init__(self, face_warp: FaceWarp, image_shape):
        axes = face_warp.axes
        iod = axes.eye_distance
        eyes_v, chin_v = face_warp.eyes_v, face_warp.chin_v
        top_v = eyes_v - HEAD_TOP_ABOVE_EYES_IOD * iod
        centre_u, centre_v = face_warp.mouth_u, (top_v + chin_v) / 2
        radius_u, radius_v = HEAD_HALF_WIDTH_IOD * iod, (chin_v - top_v) / 2 + 0.1 * iod

        region = axes.region(
            centre_u - FADE_END * radius_u,
            centre_u + FADE_END * radius_u,
            centre_v - FADE_END * radius_v,
            centre_v + FADE_END * radius_v,
            image_shape,
        )
        # It must hold the face region, which is pasted into it before this warp.
        self.region: Region = region.union(face_warp.region) if region is not None else face_warp.region
        self.grid_x, self.grid_y, u, v = axes.grid(self.region)

        ellipse_radius = np.sqrt(((u - centre_u) / radius_u) ** 2 + ((v - centre_v) / radius_v) ** 2)
        self.weight = (1.0 - smoothstep(1.0, FADE_END, ellipse_radius)).astype(np.float32)

        # Backward displacement per radian of roll about the neck pivot: src = p + w * (dy, -dx).
        pivot_x, pivot_y = axes.to_image(centre_u, chin_v + NECK_BELOW_CHIN_IOD * iod)
        dx = self.grid_x + self.region.x0 - pivot_x
        dy = self.grid_y + self.region.y0 - pivot_y
        self.roll_x = (self.weight * dy).astype(np.float32)
        self.roll_y = (-self.weight * dx).astype(np.float32)
        self.eye_distance = iod

        # Rounding: sideways squeeze about the mouth centre, fading within about a mouth width.
        # Stored only for the box where it is non-negligible, to keep per-frame work small.
        half_width = face_warp.mouth_width / 2
        du, dv = u - face_warp.mouth_u, v - face_warp.line_v_centre
        reach = np.exp(-((du / (1.6 * half_width)) ** 2) - (dv / (1.1 * half_width)) ** 2)
        rows, cols = np.nonzero(reach > ROUNDING_NEGLIGIBLE)
        self.round_box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1)) if len(rows) else None
        squeeze = ROUNDING_SQUEEZE * du * reach
        if self.round_box is not None:
            self.round_x, self.round_y = (
                a[self.round_box].astype(np.float32) for a in axes.direction_to_image(squeeze, np.zeros_like(squeeze))
            )

    def apply(
        self, source: np.ndarray, roll: float, shift_x: float, shift_y: float, rounding: float
    ) -> np.ndarray | None:
        """The head region for one frame (shifts in units of iod, positive y = down), or None
        when nothing moves."""
        if roll == 0.0 and shift_x == 0.0 and shift_y == 0.0 and rounding == 0.0:
            return None
        map_x = cv2.scaleAdd(self.roll_x, float(roll), self.grid_x)
        map_y = cv2.scaleAdd(self.roll_y, float(roll), self.grid_y)
        map_x = cv2.scaleAdd(self.weight, -float(shift_x) * self.eye_distance, map_x)
        map_y = cv2.scaleAdd(self.weight, -float(shift_y) * self.eye_distance, map_y)
        if rounding != 0.0 and self.round_box is not None:
            map_x[self.round_box] += float(rounding) * self.round_x
            map_y[self.round_box] += float(rounding) * self.round_y
        return cv2.remap(source, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
