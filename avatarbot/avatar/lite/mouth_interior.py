"""Paints the inside of an opened mouth into the gap the jaw warp tears between the lips.

Without it an opening mouth is a stretch of lip and skin, which reads as rubber, not speech.
The gap is known exactly: a pixel is in it when the warp made it sample from across the lip
line, i.e. when its distance below the line lies between -rise and +drop times the opening.
Everything per pixel that does not depend on the opening is computed once.

The look, all scaled to the photo's exposure: a warm dark cavity, darkest in the middle, a hint
of tongue low down and of upper teeth under the upper lip. Soft on purpose: at preview
resolution a suggestion reads better than a drawing.
"""

from __future__ import annotations

import numpy as np

from avatarbot.avatar.lite.geometry import smoothstep
from avatarbot.media.types import Face

CAVITY_RGB = (58.0, 20.0, 24.0)
CAVITY_SHADOW = 0.45  # the middle of the opening is this much darker than its rim
TONGUE_RGB = (150.0, 62.0, 66.0)
TONGUE_ALPHA, TONGUE_SHARE = 0.35, 0.4  # tongue tint over the bottom 40% of the opening
TEETH_RGB = (238.0, 232.0, 220.0)
TEETH_ALPHA = 0.85
TEETH_HEIGHT_PER_MOUTH_WIDTH = 0.08  # visible upper-teeth height when the mouth is wide open
TEETH_CORE = 0.65  # teeth span this middle fraction of the mouth's width
TEETH_APPEAR_PX = (2.0, 6.0)  # teeth fade in as the opening grows from 2 to 6 pixels
FEATHER_PX = 1.0  # anti-aliasing of the opening's rim
WELL_LIT_GREY = 170.0  # mean cheek brightness (0-255) of a well-exposed face


class MouthInterior:
    def __init__(
        self,
        from_line: np.ndarray,
        drop: np.ndarray,
        rise: np.ndarray,
        sideways: np.ndarray,
        mouth_width: float,
        exposure: float,
    ):
        """Per pixel of the mouth box: distance below the lip line (px), the share of the opening
        by which that pixel's side moved (down below the line, up above it), and the distance
        from the mouth's centre line in half-widths."""
        self.from_line, self.drop, self.rise = from_line, drop, rise
        self.teeth_core = 1.0 - smoothstep(TEETH_CORE, (1 + TEETH_CORE) / 2, sideways)
        self.mouth_width = mouth_width
        self.exposure = exposure

    def paint(self, box: np.ndarray, opening_px: float) -> None:
        """Fill the gap in `box` (the warped mouth box, uint8 RGB, changed in place)."""
        top = -opening_px * self.rise
        bottom = opening_px * self.drop
        inside = np.minimum(self.from_line - top, bottom - self.from_line)
        alpha = np.clip(inside / FEATHER_PX + 0.5, 0.0, 1.0)
        if not alpha.any():
            return
        height = np.maximum(bottom - top, 1e-3)
        from_top = self.from_line - top

        depth = np.clip(inside / (0.5 * np.maximum(height, 1.0)), 0.0, 1.0)  # 0 at the rim, 1 mid
        colour = np.multiply.outer(1.0 - CAVITY_SHADOW * depth, np.array(CAVITY_RGB, np.float32))
        tongue = TONGUE_ALPHA * np.clip((from_top / height - (1 - TONGUE_SHARE)) / TONGUE_SHARE, 0.0, 1.0)
        colour += (np.array(TONGUE_RGB, np.float32) - colour) * tongue[..., None]

        appear = np.clip((height - TEETH_APPEAR_PX[0]) / (TEETH_APPEAR_PX[1] - TEETH_APPEAR_PX[0]), 0.0, 1.0)
        teeth_height = np.maximum(np.minimum(TEETH_HEIGHT_PER_MOUTH_WIDTH * self.mouth_width, 0.4 * height), 0.5)
        # Shadowed by the upper lip at the top, a soft biting edge at the bottom.
        profile = smoothstep(0.0, 0.25 * teeth_height, from_top) * np.clip(1.5 - from_top / teeth_height, 0.0, 1.0)
        teeth = TEETH_ALPHA * self.teeth_core * appear * profile
        colour += (np.array(TEETH_RGB, np.float32) - colour) * teeth[..., None]

        colour *= self.exposure
        blended = box + (colour - box) * alpha[..., None]
        box[...] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def exposure(photo: np.ndarray, face: Face) -> float:
    """How brightly the lower face is lit (1.0 = well lit), so painted teeth never glow on a
    dark photo. Measured on the cheeks and chin, away from hair, eyes and background."""
    x0, y0, x1, y1 = face.box
    w, h = x1 - x0, y1 - y0
    cheeks = photo[
        max(0, int(y0 + 0.55 * h)) : max(1, int(y0 + 0.9 * h)), max(0, int(x0 + 0.2 * w)) : max(1, int(x1 - 0.2 * w))
    ]
    return float(np.clip(cheeks.mean() / WELL_LIT_GREY, 0.45, 1.0)) if cheeks.size else 1.0
