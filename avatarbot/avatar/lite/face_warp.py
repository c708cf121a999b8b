"""The talking part: the jaw drops, the lips part over a dark mouth, the eyelids close.

One region of the photo (eyes down to below the chin) is warped per frame with cv2.remap. Its
displacement is linear in the two controls, so the fields for "mouth fully open" and "eyes
fully shut" are computed once and each frame only scales and adds them.

The lips part along the *lip line* (where they meet): below it, lower lip, jaw and chin move
down as one (tapering towards the jaw's sides and fading out on the neck); above it, the upper
lip rises a little. The gap this tears open between the two sides is painted as the inside of a
mouth (`mouth_interior.py`), so it reads as a mouth opening, not a stretch.

Blinks pull the skin between brow and eye down over the eye until the upper lash line meets
the lower lid.
"""

from __future__ import annotations

import cv2
import numpy as np

from avatarbot.avatar.lite.geometry import FaceAxes, smoothstep
from avatarbot.avatar.lite.mouth_interior import MouthInterior, exposure
from avatarbot.media.types import Face

# Mouth, in units of mouth width or inter-ocular distance (iod). Landmarks outside the usual
# range (estimated ones can be) are pulled back into it.
MAX_OPENING_PER_MOUTH_WIDTH = 0.22  # lower-lip drop at full loudness ("ah")
MOUTH_WIDTH_IOD = (0.6, 1.3)
LIP_HEIGHT_IOD = (0.12, 0.6)  # top of the upper lip to bottom of the lower lip
UPPER_LIP_SHARE = 0.15  # the upper lip rises this fraction of the opening
LENS_SHARPNESS = 0.7  # <1 makes the opening rounder in the middle, pointed at the corners
JAW_FLAT_IOD, JAW_EDGE_IOD = 0.45, 1.1  # jaw drop is whole within, fades out by, this far sideways
BELOW_CHIN_IOD = 0.6  # the drop fades out over this much neck below the chin

# Eyes, in iod from the eye centre along v (negative = up).
EYE_HALF_WIDTH_IOD = 0.24
LID_FOLD_IOD = -0.34  # the skin from here down slides over the eye (stays below the brow)
UPPER_LID_IOD = -0.11
LOWER_LID_IOD = 0.08


class FaceWarp:
    def __init__(self, face: Face, image_shape, photo: np.ndarray):
        self.axes = axes = FaceAxes.of(face)
        iod = axes.eye_distance
        marks = axes.landmarks(face)
        self._mouth_shape(marks, iod)
        self.eyes_v = min(marks["left_eye"][1], marks["right_eye"][1])
        self.chin_v = max(marks["chin"][1], self.lower_v + 0.3 * iod)
        self.nose_v = min(marks["nose"][1], self.upper_v - 0.1 * iod)
        self.max_opening_px = MAX_OPENING_PER_MOUTH_WIDTH * self.mouth_width

        edge = JAW_EDGE_IOD * iod + 2
        top, bottom = self.eyes_v + (LID_FOLD_IOD - 0.15) * iod, self.chin_v + BELOW_CHIN_IOD * iod + 2
        region = axes.region(self.mouth_u - edge, self.mouth_u + edge, top, bottom, image_shape)
        if region is None:
            raise ValueError("face lies outside the image")
        self.region = region
        self.grid_x, self.grid_y, u, v = axes.grid(region)

        from_line, drop, rise = self._jaw_shares(u, v, iod)
        shift_v = np.where(from_line >= 0, -drop, rise) * self.max_opening_px
        self.jaw_x, self.jaw_y = (a.astype(np.float32) for a in axes.direction_to_image(0.0, shift_v))

        shift_v = sum(_eyelid_shift(u - marks[eye][0], v - marks[eye][1], iod) for eye in ("left_eye", "right_eye"))
        self.lid_x, self.lid_y = (a.astype(np.float32) for a in axes.direction_to_image(0.0, shift_v))

        # The mouth box: every pixel the opening can reach; only there is the inside painted.
        reach = (
            (np.abs(u - self.mouth_u) <= self.mouth_width / 2 + 1)
            & (from_line >= -UPPER_LIP_SHARE * self.max_opening_px - 2)
            & (from_line <= self.max_opening_px + 2)
        )
        rows, cols = np.nonzero(reach)
        self.mouth_box = self.interior = None
        if len(rows):
            box = self.mouth_box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
            sideways = np.abs(u[box] - self.mouth_u) / (self.mouth_width / 2)
            self.interior = MouthInterior(
                from_line[box], drop[box], rise[box], sideways, self.mouth_width, exposure(photo, face)
            )

    def _jaw_shares(self, u: np.ndarray, v: np.ndarray, iod: float):
        """Per pixel: distance below the lip line, and which share of the opening moves it -
        down (`drop`, below the line) or up (`rise`, above it)."""
        lens = np.clip(1.0 - ((u - self.mouth_u) / (self.mouth_width / 2)) ** 2, 0.0, 1.0) ** LENS_SHARPNESS
        jaw = 1.0 - smoothstep(JAW_FLAT_IOD * iod, JAW_EDGE_IOD * iod, np.abs(u - self.mouth_u))
        line_v = self.lip_line_v(u)
        from_line = v - line_v
        # Right under the line the lips part in a lens between the corners; a little lower the
        # whole jaw moves, down to the chin, fading out on the neck.
        to_lower_lip = smoothstep(0.0, (self.lower_v - self.line_v_centre) + 0.15 * iod, from_line)
        on_neck = 1.0 - smoothstep(self.chin_v, self.chin_v + BELOW_CHIN_IOD * iod, v)
        drop = (lens + (jaw - lens) * to_lower_lip) * on_neck
        rise = UPPER_LIP_SHARE * lens * np.where(from_line >= 0, 1.0, smoothstep(self.nose_v, line_v, v))
        return from_line, drop, rise

    def _mouth_shape(self, marks, iod: float) -> None:
        """Mouth corners, lip line and lip edges in face coordinates, pulled into sane ranges."""
        (ul, vl), (ur, vr) = marks["mouth_left"], marks["mouth_right"]
        width = ur - ul
        if not (MOUTH_WIDTH_IOD[0] * iod <= width <= MOUTH_WIDTH_IOD[1] * iod):
            width = float(np.clip(width, *(np.array(MOUTH_WIDTH_IOD) * iod)))
            ul, ur = (ul + ur) / 2 - width / 2, (ul + ur) / 2 + width / 2
        self.mouth_u, self.mouth_width = (ul + ur) / 2, width
        self.corners_v = (vl, vr)
        upper_v, lower_v = marks["upper_lip"][1], marks["lower_lip"][1]
        height = float(np.clip(lower_v - upper_v, *(np.array(LIP_HEIGHT_IOD) * iod)))
        centre = (upper_v + lower_v) / 2
        self.upper_v, self.lower_v = centre - height / 2, centre + height / 2
        # Where the lips meet: through both corners, sagging (or smiling) to the lips' middle.
        self.line_v_centre = float(np.clip(centre, (vl + vr) / 2 - 0.25 * width, (vl + vr) / 2 + 0.25 * width))
        self._corner_u = (ul, ur)

    def lip_line_v(self, u):
        ul, ur = self._corner_u
        vl, vr = self.corners_v
        uc = np.clip(u, ul, ur)
        straight = vl + (vr - vl) * (uc - ul) / (ur - ul)
        sag = self.line_v_centre - (vl + vr) / 2
        return straight + sag * (1.0 - ((uc - self.mouth_u) / (self.mouth_width / 2)) ** 2)

    def apply(self, source: np.ndarray, opening: float, blink: float) -> np.ndarray | None:
        """The warped face region for one frame (source: the photo's face region), or None when
        nothing moves."""
        if opening <= 0.0 and blink <= 0.0:
            return None
        map_x = cv2.scaleAdd(self.jaw_x, float(opening), self.grid_x)
        map_y = cv2.scaleAdd(self.jaw_y, float(opening), self.grid_y)
        if blink > 0.0:
            map_x = cv2.scaleAdd(self.lid_x, float(blink), map_x)
            map_y = cv2.scaleAdd(self.lid_y, float(blink), map_y)
        out = cv2.remap(source, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if opening > 0.0 and self.interior is not None:
            self.interior.paint(out[self.mouth_box], opening * self.max_opening_px)
        return out


def _eyelid_shift(eu: np.ndarray, ev: np.ndarray, iod: float) -> np.ndarray:
    """Per unit of blink, how far up (negative v) each pixel samples: at full closure the band
    from the lid fold to the lower lid shows only the skin from the fold to the upper lid."""
    fold, upper, lower = LID_FOLD_IOD * iod, UPPER_LID_IOD * iod, LOWER_LID_IOD * iod
    squeeze = (upper - fold) / (lower - fold)
    across = np.clip(1.0 - (eu / (EYE_HALF_WIDTH_IOD * iod)) ** 2, 0.0, 1.0) ** 0.5
    on_lid = (ev >= fold) & (ev < lower)
    return np.where(on_lid, (ev - fold) * (squeeze - 1.0), 0.0) * across
