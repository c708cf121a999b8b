"""The talking part: lips that open, close, spread and round; eyelids that blink; brows that lift.

One region of the photo (brows down to below the chin) is warped per frame with one cv2.remap.
Vertically the warp is a set of *knots* per column of the face: contour points (nose base, outer
and inner lip edges, chin, neck; brow, lid fold, upper and lower lid) that each frame moves to a
new height. Between two knots the skin stretches or squeezes linearly, so a lip moves as a band
and the skin between lip and chin follows. A region whose knots meet (a closed mouth, a shut eye)
disappears: that is how an open-mouthed photo closes its mouth and how a lid covers the eye.

Per column of the mouth:
    nose base - outer upper lip - inner upper lip - [upper teeth] - inner lower lip - outer lower lip - chin - neck
The upper teeth (the top part of what is visible between the lips in the photo) are fixed to the
skull: they never move, the upper lip only slides over them. The jaw carries the lower lip, the
rest of the mouth's inside and the chin. Where the photo shows no inside (a closed mouth), the
gap is painted (`mouth_interior.py`), upper teeth again fixed to the skull.

Horizontally, "ee" spreads and "oo" rounds the mouth with a smooth squeeze around its centre,
a second small remap after the opening so the painted inside narrows with the lips. The knots
are solved on a coarse grid (big faces) and exactly, at full resolution, over the lips.
Faces without mesh contours (found by the fallback detectors) get contours estimated from their
eight named points.
"""

from __future__ import annotations

import cv2
import numpy as np

from avatarbot.avatar.lite.geometry import FaceAxes, piecewise_inverse, smoothstep
from avatarbot.avatar.lite.mouth_interior import CAVITY_RGB, MouthInterior, exposure, own_cavity
from avatarbot.media.types import Face

# Mouth, in units of the inter-ocular distance (iod) unless said otherwise.
MAX_GAP_IOD = 0.30  # inner-lip gap of a wide "aa"
LENS_POWER = 1.0  # the opening's outline across the mouth: (1 - x^2)^power, pointed at the corners
UPPER_LIP_SHARE = 0.2  # the upper lip takes this share of an opening (the jaw the rest)
TEETH_SPLIT = 0.6  # the top 60% of a photo's visible mouth inside is upper teeth (skull)
JAW_FLAT_IOD, JAW_EDGE_IOD = 0.45, 1.1  # the jaw moves whole within, fades out by, this far sideways
NECK_IOD = 0.6  # below the chin the motion fades out over this much neck
WIDTH_SPREAD, WIDTH_ROUND = 0.2, 0.3  # mouth width change at full "ee" / "oo", share of its width
MOUTH_WIDTH_IOD = (0.55, 1.3)  # estimated mouths are pulled into this range
SQUEEZE_NEGLIGIBLE = 1e-3  # the squeeze's reach is cut where it falls below this
SQUEEZE_REACH = 2.0  # the squeeze fades out between the corners and this many half-widths
FINE_BEYOND_CORNERS_IOD = 0.2  # the exact (full-resolution) warp reaches this far past the corners
INNER_MARGIN_IOD = 0.02  # an open mouth's inside reaches this far past the mesh's inner lip contour
PAINT_BELOW_GAP_PX = (1.0, 4.0)  # the photo's own inside is used where its gap exceeds this
STILL = 0.01  # a blink or brow raise smaller than this is not drawn (under a tenth of a pixel)
# The warp is computed on a grid of about this many points per eye distance: a face with a larger
# eye distance (in px) gets a coarser grid, resized to its pixels; the lips stay exact.
WORK_IOD_PX = 22

# Eyes.
EYE_BOX_IOD = 0.45  # half width of the box warped around each eye
ABOVE_BROW_IOD, BELOW_LID_IOD = 0.35, 0.25  # the lid/brow warp fades out this far beyond them
LID_COVER = 0.97  # a full blink brings the upper lid this far down towards the lower one
LOWER_LID_RISE = 0.08  # ... and the lower lid this share of the way up
BROW_RAISE_IOD = 0.05  # a full brow raise


class FaceWarp:
    def __init__(self, face: Face, image_shape, photo: np.ndarray):
        self.axes = axes = FaceAxes.of(face)
        self.iod = iod = axes.eye_distance
        lips = _lip_contours(face, axes)
        self.mouth_u = float((lips["inner_lip_upper"][0, 0] + lips["inner_lip_upper"][-1, 0]) / 2)
        self.mouth_width = float(lips["outer_lip_upper"][-1, 0] - lips["outer_lip_upper"][0, 0])
        marks = axes.landmarks(face)
        self.eyes_v = min(marks["left_eye"][1], marks["right_eye"][1])
        self.chin_v = max(marks["chin"][1], float(lips["outer_lip_lower"][:, 1].max()) + 0.25 * iod)
        self.line_v_centre = float(_along(lips["inner_lip_upper"], self.mouth_u))
        self.centre_gap = float(_along(lips["inner_lip_lower"], self.mouth_u)) - self.line_v_centre
        self.centre_gap = max(self.centre_gap, 0.0)
        self.max_gap_px = MAX_GAP_IOD * iod
        eyes = [_eye_contours(face, axes, side) for side in ("left", "right")]

        left = min(self.mouth_u - JAW_EDGE_IOD * iod, *(e["centre_u"] - EYE_BOX_IOD * iod for e in eyes))
        right = max(self.mouth_u + JAW_EDGE_IOD * iod, *(e["centre_u"] + EYE_BOX_IOD * iod for e in eyes))
        top = min(e["brow"][:, 1].min() for e in eyes) - ABOVE_BROW_IOD * iod
        bottom = self.chin_v + NECK_IOD * iod + 2
        region = axes.region(left - 2, right + 2, top - 2, bottom, image_shape)
        if region is None:
            raise ValueError("face lies outside the image")
        self.region = region
        self.grid_x, self.grid_y, u, v = axes.grid(region)
        # The warp is smooth between contours, so a big face computes it on a coarse grid and
        # resizes it: the cost per frame then stays that of a face WORK_IOD_PX across.
        self.step = max(1, int(iod // WORK_IOD_PX))
        _, _, coarse_u, coarse_v = axes.grid(region, self.step)
        self.coarse_shape = coarse_u.shape
        self.mouth = _MouthRig(self, lips, coarse_u, coarse_v, u, v, photo)
        self.eyes = [_EyeRig(self, eye, coarse_u, coarse_v) for eye in eyes]
        self._last = (None, None)  # the last frame's controls and warped region

    def apply(self, source: np.ndarray, gap: float, width: float, blink: float, brow: float) -> np.ndarray:
        """The warped face region for one frame (`source`: the photo's face region). `gap` 0..1
        of the widest opening, `width` -1 rounded .. 1 spread, `blink` 0 open .. 1 shut, `brow`
        0..1 raise."""
        same_source = (source.ctypes.data, source.shape)
        controls = (*same_source, gap, width, blink if blink >= STILL else 0.0, brow if brow >= STILL else 0.0)
        if controls == self._last[0]:  # pauses hold one pose: no need to warp it again
            return self._last[1]
        gap_px = gap * self.max_gap_px
        dx = np.zeros(self.coarse_shape, np.float32)
        dy = np.zeros(self.coarse_shape, np.float32)
        self.mouth.displace(dx, dy, gap_px)
        for eye in self.eyes:
            eye.displace(dx, dy, blink, brow)
        if self.step > 1:
            size = (self.grid_x.shape[1], self.grid_x.shape[0])
            dx, dy = cv2.resize(dx, size), cv2.resize(dy, size)
        paint = self.mouth.refine_and_paint(dx, dy, gap_px, width)
        out = cv2.remap(source, self.grid_x + dx, self.grid_y + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        paint(out)
        self._last = (controls, out)
        return out


class _MouthRig:
    """The mouth's knots twice: on the (coarse) warp grid over jaw and chin, and at full
    resolution over the lips, where a closed mouth's seam must stay sharp."""

    def __init__(self, face: FaceWarp, lips: dict, u: np.ndarray, v: np.ndarray, full_u: np.ndarray, full_v, photo):
        """`u`, `v`: the face region's (possibly coarse) warp grid; `full_u`, `full_v`: its pixels."""
        iod = face.iod
        reach = (np.abs(u - face.mouth_u) <= JAW_EDGE_IOD * iod) & (v <= face.chin_v + NECK_IOD * iod)
        reach &= v >= face.line_v_centre - 0.7 * iod
        self.box = _bounding_box(reach)
        self.coarse = _MouthKnots(face, lips, u[self.box], v[self.box])

        half = face.mouth_width / 2
        up = _along(lips["inner_lip_upper"], full_u)
        low = np.maximum(_along(lips["inner_lip_lower"], full_u), up)
        du = full_u - face.mouth_u
        reach = (np.abs(du) <= half + FINE_BEYOND_CORNERS_IOD * iod) & (
            full_v >= up - UPPER_LIP_SHARE * face.max_gap_px - 3
        )
        reach &= full_v <= low + face.max_gap_px + 3
        self.lips = lips_box = _bounding_box(reach)
        self.fine = _MouthKnots(face, lips, full_u[lips_box], full_v[lips_box])

        # Spread and rounding: a sideways squeeze about the mouth's centre, fading within about a
        # mouth width, applied after the opening (so the painted inside narrows with the lips).
        squeeze = (1.0 - smoothstep(half, SQUEEZE_REACH * half, np.abs(du))) * (
            1.0 - smoothstep(0.4 * half, 1.1 * half, np.abs(full_v - face.line_v_centre))
        )
        self.squeeze_box = _bounding_box(squeeze > SQUEEZE_NEGLIGIBLE)
        along = (du * squeeze)[self.squeeze_box]
        self.squeeze_x, self.squeeze_y = (a.astype(np.float32) for a in face.axes.direction_to_image(along, 0.0))
        rows, cols = self.squeeze_box
        self.squeeze_grid = np.meshgrid(
            np.arange(cols.stop - cols.start, dtype=np.float32), np.arange(rows.stop - rows.start, dtype=np.float32)
        )

        gap = (low - up)[lips_box]
        self.painted = 1.0 - smoothstep(PAINT_BELOW_GAP_PX[0], PAINT_BELOW_GAP_PX[1], gap)
        region_photo = photo[face.region.slices]
        between = (full_v > up + 0.5) & (full_v < low - 0.5) & (np.abs(du) < 0.7 * half)
        around = (np.abs(du) < half) & (full_v > low + 0.1 * iod) & (full_v < face.chin_v)
        cavity = own_cavity(region_photo, between)
        self.interior = MouthInterior(
            full_v[lips_box],
            up[lips_box],
            (1.0 - TEETH_SPLIT) * gap,
            np.abs(du[lips_box]) / half,
            face.mouth_width,
            CAVITY_RGB if cavity is None else cavity,
            1.0 if cavity is not None else exposure(region_photo[around]),
            colourful=_colourful(region_photo[around]),
        )

    def displace(self, dx: np.ndarray, dy: np.ndarray, gap_px: float) -> None:
        """Add the mouth's opening or closing on the warp grid."""
        ddx, ddy, _ = self.coarse.solve(gap_px)
        dx[self.box] += ddx
        dy[self.box] += ddy

    def refine_and_paint(self, dx: np.ndarray, dy: np.ndarray, gap_px: float, width: float):
        """Replace the lips' displacement with the exact one (full resolution, after the coarse
        field was resized), and return what finishes the warped region: the painted inside, then
        the mouth's spread or rounding."""
        dx[self.lips], dy[self.lips], target = self.fine.solve(gap_px)
        top, split, bottom = target[2:5]

        def paint(out: np.ndarray) -> None:
            self.interior.paint(out[self.lips], top, split, bottom, self.painted)
            if abs(width) >= SQUEEZE_NEGLIGIBLE:
                gain = -width * (WIDTH_SPREAD if width > 0 else WIDTH_ROUND)
                grid_x, grid_y = self.squeeze_grid
                box = out[self.squeeze_box]
                box[...] = cv2.remap(
                    box.copy(),
                    cv2.scaleAdd(self.squeeze_x, gain, grid_x),
                    cv2.scaleAdd(self.squeeze_y, gain, grid_y),
                    cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE,
                )

        return paint


class _MouthKnots:
    """Per pixel of a box: where the mouth's knots rest in the photo, and how they move."""

    def __init__(self, face: FaceWarp, lips: dict, u: np.ndarray, v: np.ndarray):
        iod = face.iod
        self.v, self.axes = v, face.axes
        outer_up, inner_up, inner_low, outer_low = (
            _along(lips[n], u) for n in ("outer_lip_upper", "inner_lip_upper", "inner_lip_lower", "outer_lip_lower")
        )
        inner_low = np.maximum(inner_low, inner_up)
        own_shape = np.clip((inner_low - inner_up) / max(face.centre_gap, 1e-3), 0.0, 1.0)
        # The mesh's inner contour runs a little inside the lips' visible edge: an open mouth's
        # inside starts slightly beyond it, or a closed mouth would keep a line of teeth.
        margin = INNER_MARGIN_IOD * iod * smoothstep(0.5, 2.0, inner_low - inner_up)
        inner_up, inner_low = inner_up - margin, inner_low + margin
        source_gap = inner_low - inner_up
        nose = np.minimum(outer_up - 0.12 * iod, face.line_v_centre - 0.45 * iod)
        du = u - face.mouth_u
        chin = np.maximum(face.chin_v - 0.15 * iod * (du / (JAW_EDGE_IOD * iod)) ** 2, outer_low + 0.2 * iod)
        teeth = inner_up + TEETH_SPLIT * source_gap
        self.source = np.stack([nose, outer_up, inner_up, teeth, inner_low, outer_low, chin, chin + NECK_IOD * iod])

        half = face.mouth_width / 2
        # How far each column opens, relative to the middle: a lens between the corners for a
        # closed photo; an open photo keeps its own opening's outline.
        lens = np.clip(1.0 - (du / half) ** 2, 0.0, 1.0) ** LENS_POWER
        photo_open = smoothstep(PAINT_BELOW_GAP_PX[0], PAINT_BELOW_GAP_PX[1], face.centre_gap)
        lens = lens + (own_shape - lens) * photo_open
        jaw = 1.0 - smoothstep(JAW_FLAT_IOD * iod, JAW_EDGE_IOD * iod, np.abs(du))
        centre_gap = face.centre_gap
        # Per frame a knot is at rest + G * per_gap, G the wanted centre gap in px: each column's
        # gap becomes G * lens, shared between the upper lip (up) and the jaw (down).
        up_share, down_share = UPPER_LIP_SHARE, 1.0 - UPPER_LIP_SHARE
        zero = np.zeros_like(u)
        self.per_gap = np.stack(
            [
                zero,
                -up_share * lens,
                -up_share * lens,
                zero,
                down_share * lens,
                down_share * lens,
                down_share * jaw,
                zero,
            ]
        )
        fixed = np.stack(
            [
                zero,
                up_share * source_gap,
                up_share * source_gap,
                zero,
                -down_share * source_gap,
                -down_share * source_gap,
                -down_share * centre_gap * jaw,
                zero,
            ]
        )
        self.rest = self.source + fixed
        # float32 throughout: half the memory traffic of the per-frame knot arithmetic.
        self.source, self.rest, self.per_gap = (a.astype(np.float32) for a in (self.source, self.rest, self.per_gap))

    def solve(self, gap_px: float):
        """Image displacement (dx, dy) for this box, and the knots' targets."""
        target = self.rest + gap_px * self.per_gap
        target[3] = np.minimum(np.maximum(self.source[3], target[2]), target[4])  # teeth stay unless covered
        target[4] = np.maximum(target[4], target[2])
        _non_decreasing(target)
        source_v = piecewise_inverse(self.v, self.source, target)
        ddx, ddy = self.axes.direction_to_image(0.0, source_v - self.v)
        return ddx, ddy, target


class _EyeRig:
    def __init__(self, face: FaceWarp, eye: dict, u: np.ndarray, v: np.ndarray):
        iod = face.iod
        cu = eye["centre_u"]
        reach = np.abs(u - cu) <= EYE_BOX_IOD * iod
        top = eye["brow"][:, 1].min() - ABOVE_BROW_IOD * iod
        bottom = eye["lower"][:, 1].max() + BELOW_LID_IOD * iod
        reach &= (v >= top) & (v <= bottom)
        rows, cols = np.nonzero(reach)
        self.box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
        u, v = u[self.box], v[self.box]
        self.v, self.axes = v, face.axes

        def at(points):
            return np.interp(u, *points[np.argsort(points[:, 0])].T).astype(np.float32)

        upper, lower, brow = at(eye["upper"]), at(eye["lower"]), at(eye["brow"])
        lower = np.maximum(lower, upper)
        brow = np.minimum(brow, upper - 0.08 * iod)
        fold = upper - 0.4 * (upper - brow)
        self.source = np.stack([brow - ABOVE_BROW_IOD * iod, brow, fold, upper, lower, lower + BELOW_LID_IOD * iod])
        across = 1.0 - smoothstep(0.6 * EYE_BOX_IOD * iod, EYE_BOX_IOD * iod, np.abs(u - cu))
        opening = lower - upper
        zero = np.zeros_like(u)
        self.per_blink = np.stack([zero, zero, zero, LID_COVER * opening, -LOWER_LID_RISE * opening, zero])
        raise_px = BROW_RAISE_IOD * iod * across
        self.per_brow = np.stack([zero, -raise_px, -0.5 * raise_px, -0.15 * raise_px, zero, zero])
        self.source, self.per_blink, self.per_brow = (
            a.astype(np.float32) for a in (self.source, self.per_blink, self.per_brow)
        )

    def displace(self, dx: np.ndarray, dy: np.ndarray, blink: float, brow: float) -> None:
        if blink < STILL and brow < STILL:
            return
        target = self.source + blink * self.per_blink + brow * self.per_brow
        _non_decreasing(target)
        source_v = piecewise_inverse(self.v, self.source, target)
        ddx, ddy = self.axes.direction_to_image(0.0, source_v - self.v)
        dx[self.box] += ddx
        dy[self.box] += ddy


def _along(contour: np.ndarray, u):
    """The contour's v at each u (linear between its points, flat beyond its ends)."""
    order = np.argsort(contour[:, 0])
    return np.interp(u, contour[order, 0], contour[order, 1]).astype(np.float32)


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice]:
    rows, cols = np.nonzero(mask)
    return slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1)


def _non_decreasing(knots: np.ndarray) -> None:
    """Knots may not pass each other (a lip can't go through the other): clamp in place, in order."""
    for k in range(1, len(knots)):
        np.maximum(knots[k], knots[k - 1], out=knots[k])


def _colourful(pixels: np.ndarray) -> float:
    """0 for a grayscale photo, 1 for clearly coloured skin: how far channels differ."""
    if not pixels.size:
        return 1.0
    spread = np.abs(pixels.astype(np.float32) - pixels.mean(axis=-1, keepdims=True)).mean()
    return float(np.clip(spread / 12.0, 0.0, 1.0))


# --- contours in face coordinates ------------------------------------------------------------------


def _lip_contours(face: Face, axes: FaceAxes) -> dict[str, np.ndarray]:
    """The four lip contours as (n, 2) arrays of face (u, v): the mesh's, or estimated from the
    mouth corners and lip points (lips meeting on a line that sags to the lips' middle)."""
    names = ("outer_lip_upper", "outer_lip_lower", "inner_lip_upper", "inner_lip_lower")
    if face.has_contours:
        contours = {name: np.stack(axes.to_face(*face.contour(name).T), axis=1) for name in names}
        # The mesh's inner lip contour stops short of the mouth corners; an open mouth's dark
        # opening reaches further, so the inner contours run on to the outer corners.
        corners = contours["outer_lip_upper"][[0, -1]]
        for name in ("inner_lip_upper", "inner_lip_lower"):
            contours[name] = np.concatenate([corners[:1], contours[name], corners[1:]])
        return contours
    iod = axes.eye_distance
    marks = axes.landmarks(face)
    (ul, vl), (ur, vr) = marks["mouth_left"], marks["mouth_right"]
    width = float(np.clip(ur - ul, *(np.array(MOUTH_WIDTH_IOD) * iod)))
    ul, ur = (ul + ur) / 2 - width / 2, (ul + ur) / 2 + width / 2
    upper, lower = marks["upper_lip"][1], marks["lower_lip"][1]
    centre = float(np.clip((upper + lower) / 2, (vl + vr) / 2 - 0.25 * width, (vl + vr) / 2 + 0.25 * width))
    u = np.linspace(ul, ur, 11)
    t = (u - (ul + ur) / 2) / (width / 2)
    line = vl + (vr - vl) * (u - ul) / (ur - ul) + (centre - (vl + vr) / 2) * (1 - t**2)
    bulge = np.sqrt(np.clip(1 - t**2, 0, 1))
    return {
        "outer_lip_upper": np.stack([u, line - max(centre - upper, 0.06 * iod) * bulge], 1),
        "outer_lip_lower": np.stack([u, line + max(lower - centre, 0.08 * iod) * bulge], 1),
        "inner_lip_upper": np.stack([u, line], 1),
        "inner_lip_lower": np.stack([u, line], 1),
    }


def _eye_contours(face: Face, axes: FaceAxes, side: str) -> dict:
    """Upper lid, lower lid and brow of one eye in face (u, v): the mesh's, or arcs around the
    eye point at typical proportions."""
    iod = axes.eye_distance
    if face.has_contours:
        upper, lower, brow = (
            np.stack(axes.to_face(*face.contour(f"{side}_{name}").T), axis=1)
            for name in ("upper_lid", "lower_lid", "brow")
        )
    else:
        eu, ev = axes.landmarks(face)[f"{side}_eye"]
        u = eu + np.linspace(-0.22, 0.22, 9) * iod
        arc = np.sqrt(np.clip(1 - ((u - eu) / (0.22 * iod)) ** 2, 0, 1))
        upper = np.stack([u, ev - 0.09 * iod * arc], 1)
        lower = np.stack([u, ev + 0.06 * iod * arc], 1)
        brow = np.stack([eu + np.linspace(-0.28, 0.28, 5) * iod, np.full(5, ev - 0.33 * iod)], 1)
    return {"upper": upper, "lower": lower, "brow": brow, "centre_u": float((upper[0, 0] + upper[-1, 0]) / 2)}
