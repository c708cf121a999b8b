"""Head motion as one remap of the head region: roll about the neck, sway, and a few degrees of
yaw and pitch, the last two as a 2.5D warp.

For yaw and pitch the head is an ellipsoid fitted to the face (plus a bump for the nose): each
point moves sideways (yaw) or up-down (pitch) by its depth times the angle, so the nose and the
middle of the face travel further than the cheeks and the outline stays put, which the eye reads
as a turn or a nod rather than a slide.

Only the head moves: the displacement is full inside an ellipse around head and hair and fades
to nothing a little outside it, so the background and shoulders stay put and no border is ever
uncovered. Displacements are small (a few pixels), so everything is linear in the motion and the
fields are computed once and scaled per frame.
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
HEAD_DEPTH_IOD = 1.0  # front-to-centre depth of the ellipsoid at the face's middle
NOSE_DEPTH_IOD, NOSE_SIZE_IOD = 0.35, 0.3  # the nose stands out this much, over this radius
# The fields are smooth: computed on a grid about this many points per eye distance, then resized.
GRID_PER_IOD = 10


class HeadWarp:
    def __init__(self, face_warp: FaceWarp, image_shape, nose_uv: tuple[float, float]):
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
        self.grid_x, self.grid_y, _, _ = axes.grid(self.region)
        self.step = max(1, int(iod // GRID_PER_IOD))
        coarse_x, coarse_y, u, v = axes.grid(self.region, self.step)

        radius2 = ((u - centre_u) / radius_u) ** 2 + ((v - centre_v) / radius_v) ** 2
        self.weight = (1.0 - smoothstep(1.0, FADE_END, np.sqrt(radius2))).astype(np.float32)

        # Backward displacement per radian of roll about the neck pivot: src = p + w * (dy, -dx).
        pivot_x, pivot_y = axes.to_image(centre_u, chin_v + NECK_BELOW_CHIN_IOD * iod)
        dx = coarse_x + self.region.x0 - pivot_x
        dy = coarse_y + self.region.y0 - pivot_y
        self.roll_x = (self.weight * dy).astype(np.float32)
        self.roll_y = (-self.weight * dx).astype(np.float32)
        self.eye_distance = iod

        # Per radian of yaw / pitch: each point moves by its depth, in face axes.
        nose_u, nose_v = nose_uv
        depth = HEAD_DEPTH_IOD * iod * np.sqrt(np.clip(1.0 - radius2, 0.0, 1.0))
        depth += NOSE_DEPTH_IOD * iod * np.exp(-(((u - nose_u) ** 2 + (v - nose_v) ** 2) / (NOSE_SIZE_IOD * iod) ** 2))
        self.yaw_x, self.yaw_y = (-(self.weight * a).astype(np.float32) for a in axes.direction_to_image(depth, 0.0))
        self.pitch_x, self.pitch_y = (
            -(self.weight * a).astype(np.float32) for a in axes.direction_to_image(0.0, depth)
        )

    def apply(self, source: np.ndarray, roll: float, shift_x: float, shift_y: float, yaw: float, pitch: float):
        """The head region for one frame (angles in radians, shifts in units of iod, positive y
        = down, positive pitch = chin down), or None when nothing moves."""
        if roll == 0.0 and shift_x == 0.0 and shift_y == 0.0 and yaw == 0.0 and pitch == 0.0:
            return None
        dx = self.roll_x * float(roll) - self.weight * (float(shift_x) * self.eye_distance)
        dy = self.roll_y * float(roll) - self.weight * (float(shift_y) * self.eye_distance)
        dx += self.yaw_x * float(yaw) + self.pitch_x * float(pitch)
        dy += self.yaw_y * float(yaw) + self.pitch_y * float(pitch)
        if self.step > 1:
            size = (self.grid_x.shape[1], self.grid_x.shape[0])
            dx, dy = cv2.resize(dx, size), cv2.resize(dy, size)
        return cv2.remap(source, self.grid_x + dx, self.grid_y + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
