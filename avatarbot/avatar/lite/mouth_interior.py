"""Paints the inside of the mouth where the warp opens more of it than the photo shows.

The gap between the lips is known exactly per column (the warped inner-lip knots, `top` and
`bottom`). What fills it:
- where the photo's mouth is open, its own inside: the warp moves it (upper teeth fixed to the
  skull, the rest with the jaw), and only the part stretched beyond what the photo holds is
  painted over, in the photo's own cavity colour;
- where the photo's mouth is closed, a painted inside: a dark cavity (the photo's own if visible,
  else a warm dark red scaled to the face's exposure), a hint of tongue low down, upper teeth in
  a band fixed to the skull just under where the lips meet in the photo (the upper lip rises off
  them; they never drop with the jaw), and a faint edge of lower teeth riding on the jaw.
Soft on purpose: at preview resolution a suggestion reads better than a drawing.
"""

from __future__ import annotations

import numpy as np

from avatarbot.avatar.lite.geometry import smoothstep

CAVITY_RGB = (58.0, 20.0, 24.0)
CAVITY_SHADOW = 0.45  # the middle of the opening is this much darker than its rim
TONGUE_RGB = (150.0, 62.0, 66.0)
TONGUE_ALPHA, TONGUE_SHARE = 0.35, 0.4
TEETH_RGB = (228.0, 216.0, 198.0)
TEETH_ALPHA = 0.8
UPPER_TEETH_PER_MOUTH_WIDTH = 0.06  # visible upper-teeth height below the lip line
UPPER_TEETH_ABOVE_LINE = 0.4  # share of the teeth hidden under the upper lip at rest
LOWER_TEETH_PER_MOUTH_WIDTH = 0.04
LOWER_TEETH_ALPHA = 0.35
TEETH_CORE = 0.65  # teeth span this middle fraction of the mouth's width
FEATHER_PX = 1.0
WELL_LIT_GREY = 170.0  # mean cheek brightness (0-255) of a well-exposed face
DARKEST_SHARE = 0.3
MIN_OWN_CAVITY_PX = 40  # fewer pixels between the lips than this are a lip line, not an inside  # the photo's cavity colour: the mean of its darkest 30% inside the lips


class MouthInterior:
    def __init__(
        self,
        v: np.ndarray,
        rest_line: np.ndarray,
        source_lower: np.ndarray,
        sideways: np.ndarray,
        mouth_width: float,
        cavity_rgb: np.ndarray,
        exposure: float,
        colourful: float = 1.0,
    ):
        """Per pixel of the area the gap can reach: face v, where the lips meet in the photo
        (the upper inner lip), how tall the photo's own inside below the teeth split is (0 for a
        closed mouth), distance from the centre line in half-widths. `colourful` 0 makes the
        palette grey, for grayscale photos."""
        self.v, self.rest_line, self.source_lower = v, rest_line, source_lower
        self.teeth_core = 1.0 - smoothstep(TEETH_CORE, (1 + TEETH_CORE) / 2, sideways)
        self.upper_teeth = UPPER_TEETH_PER_MOUTH_WIDTH * mouth_width
        self.lower_teeth = LOWER_TEETH_PER_MOUTH_WIDTH * mouth_width

        # A grayscale photo gets a grey inside: the palette loses its colour with the photo's.
        def tone(rgb) -> np.ndarray:
            rgb = np.asarray(rgb, np.float32) * exposure
            return rgb.mean() + (rgb - rgb.mean()) * colourful

        self.cavity, self.tongue, self.teeth = tone(cavity_rgb), tone(TONGUE_RGB), tone(TEETH_RGB)

    def paint(self, box: np.ndarray, top, split, bottom, painted: np.ndarray) -> None:
        """Fill the gap in `box` (uint8 RGB, changed in place). `painted`: 1 where the photo's
        mouth is closed (all painted), 0 where it shows its own inside."""
        v = self.v
        inside = np.minimum(v - top, bottom - v)
        # Feathered rim, and nothing at all where the lips touch (a 0 px gap is no gap).
        alpha = np.clip(inside / FEATHER_PX + 0.5, 0.0, 1.0) * np.clip(bottom - top, 0.0, 1.0)
        rows = np.flatnonzero(alpha.any(axis=1))
        if not len(rows):
            return
        # Only the rows the gap reaches (a few of the box's) are worked on from here.
        band = slice(rows[0], rows[-1] + 1)
        box, alpha, v, top, split, bottom, painted, inside = (
            a[band] for a in (box, alpha, v, top, split, bottom, painted, inside)
        )
        source_lower, rest_line, teeth_core = self.source_lower[band], self.rest_line[band], self.teeth_core[band]
        # Where the photo has its own inside, only what the jaw stretched beyond it is new.
        stretched = np.clip(1.0 - source_lower / np.maximum(bottom - split, 1e-3), 0.0, 1.0) * (v > split)
        alpha *= painted + (1.0 - painted) * stretched
        if not alpha.any():
            return
        height = np.maximum(bottom - top, 1.0)
        from_top = v - top
        depth = np.clip(inside / (0.5 * height), 0.0, 1.0)
        colour = np.multiply.outer(1.0 - CAVITY_SHADOW * depth, self.cavity)
        tongue = TONGUE_ALPHA * np.clip((from_top / height - (1 - TONGUE_SHARE)) / TONGUE_SHARE, 0.0, 1.0)
        colour += (self.tongue - colour) * tongue[..., None]
        # Upper teeth hang from the skull: a band measured from the photo's lip line, not the
        # moving lip; a soft biting edge at the bottom. Lower teeth ride on the jaw.
        below_line = v - rest_line
        teeth_top = -UPPER_TEETH_ABOVE_LINE * self.upper_teeth
        upper = smoothstep(teeth_top, 0.0, below_line) * (
            1.0 - smoothstep(0.8 * self.upper_teeth, self.upper_teeth, below_line)
        )
        lower = LOWER_TEETH_ALPHA * np.clip(1.0 - (bottom - v) / self.lower_teeth, 0.0, 1.0)
        teeth = teeth_core * np.maximum(TEETH_ALPHA * upper * painted, lower)
        colour += (self.teeth - colour) * teeth[..., None]
        blended = box + (colour - box) * alpha[..., None]
        box[...] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def own_cavity(photo_box: np.ndarray, inside: np.ndarray) -> np.ndarray | None:
    """The photo's own mouth-inside colour (mean of its darkest pixels between the lips), or None
    when too little of it shows."""
    pixels = photo_box[inside].astype(np.float32)
    if len(pixels) < MIN_OWN_CAVITY_PX:
        return None
    grey = pixels.mean(axis=1)
    dark = pixels[grey <= np.quantile(grey, DARKEST_SHARE)]
    return dark.mean(axis=0)


def exposure(photo_box: np.ndarray) -> float:
    """How brightly the lower face is lit (1.0 = well lit), so painted teeth never glow on a dark
    photo: the mean of the skin around the mouth."""
    return float(np.clip(photo_box.mean() / WELL_LIT_GREY, 0.45, 1.0)) if photo_box.size else 1.0
