"""How well does the lite engine talk? Re-detects landmarks on every rendered frame with a detector
lite does not use, and reports per photo and sound what a viewer would notice.

    python bench/lite_quality.py [--sheets bench/lite_sheets] [--photos ...] [--sounds ...]

The measuring detector is dlib's HOG face detector with its 68-point shape predictor (both ship
in `face-recognition-models`). lite animates from MediaPipe's face mesh, so the two share no
model. dlib's frontal models cannot follow a three-quarter face (scikit-image's camera man):
there, and only there, the mesh is run afresh on each rendered frame instead, and the report
says so. The 68-point model's training data (iBUG 300-W) is licensed for non-commercial use only,
which is why lite never loads it; here it only measures. dlib gives whole-pixel points, so one
pixel of jitter is 0.02 inter-ocular distances (IOD) on a 50 px eye distance: the closure
numbers below are medians over frames for that reason.

Per case it prints:
- closed in pauses: share of pauses >= 0.3 s whose median inner-lip gap is <= 0.02 IOD
- closed on p/b/m: share of bilabials with a frame within +-2 frames at gap <= 0.02 IOD (for
  the recording, lite gets no timings: it is judged against the same speech's phonemes)
- width p5-p95: range of mouth-corner distance over the talking frames, in IOD
- gap~loudness r, lag: correlation of the inner-lip gap with the audio's RMS and the lag (frames)
  where it peaks; a loudness meter scores high, real talking heads 0.02-0.30
- head: std of the nose tip's position (IOD) and of its offset from the eye midpoint (a turn
  or nod moves the nose against the eyes; a slide does not)
- blinks: lid closures seen (the dark iris and pupil pixels around the eyes below 70% of their
  median share; dlib's lid points barely move on a shut eye, pixels do)
and writes a contact sheet per case (peak opening, a bilabial, a pause, a blink) to `--sheets`.

Tests use `Tracker`, `measure` and the metric helpers from here, so one definition of each
number is shared by the bench and the tests.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Run as a script, Python puts bench/ first on the path, where a sibling script's name could
# shadow a standard module (bench/queue.py shadows `queue`); the repository root goes there.
if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from avatarbot.avatar.engine import FPS
from avatarbot.media.types import Audio, Face, Phoneme, Photo

CLOSED_IOD = 0.02
PAUSE_S = 0.3
BILABIAL_WINDOW = 2  # frames either side
REPO = Path(__file__).resolve().parent.parent
TILE_PX = 128
BLINK_DARK_SHARE = 0.7  # a shut eye keeps its lashes: the dark share falls to ~60% of open
PHOTOS = ("astronaut", "open_mouth", "camera", "hopper")
SOUNDS = ("text", "recording", "song")
TEXT = "Bob and Pam made a map of the moon. Maybe, but please keep it simple! We will see you soon."


# --- measuring -----------------------------------------------------------------------------------


class Tracker:
    """dlib HOG + 68 points on each frame; the photo's own face box when HOG finds nothing
    there (three-quarter faces), so every frame gets points."""

    def __init__(self):
        import dlib

        from avatarbot.media.faces import _five_point_model_path

        model = _five_point_model_path().with_name("shape_predictor_68_face_landmarks.dat")
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(model))
        self._dlib = dlib

        self.last_rect = None

    def points(self, frame: np.ndarray, box) -> np.ndarray:
        """The 68 points of the face in `box`. When HOG misses it in this frame, the rectangle
        it found last (dlib's predictor wants HOG's framing, which is tighter than `box`)."""
        x0, y0, x1, y1 = box
        rects = [r for r in self.detector(frame, 0) if x0 <= r.center().x <= x1 and y0 <= r.center().y <= y1]
        if rects:
            self.last_rect = rects[0]
        rect = self.last_rect or self._dlib.rectangle(int(x0), int(y0), int(x1), int(y1))
        shape = self.predictor(frame, rect)
        return np.array([(shape.part(i).x, shape.part(i).y) for i in range(68)], np.float64)


class MeshTracker:
    """MediaPipe's face mesh (lite's own detector, run afresh on each rendered frame), for faces
    dlib's frontal models cannot follow (three-quarter views). Its points are put in the
    68-point slots `measure` reads."""

    # 68-point slot -> mesh index: eye corners and lids, mouth corners, inner lips, nose tip.
    SLOTS = {
        **dict(zip(range(36, 42), (33, 160, 158, 133, 153, 144), strict=True)),
        **dict(zip(range(42, 48), (362, 385, 387, 263, 373, 380), strict=True)),
        48: 61,
        54: 291,
        61: 81,
        62: 13,
        63: 311,
        65: 402,
        66: 14,
        67: 178,
        30: 1,
    }

    def points(self, frame: np.ndarray, box) -> np.ndarray:
        from avatarbot.media import face_mesh

        mesh = face_mesh.mesh_points(frame, box)
        points = np.zeros((68, 2))
        if mesh is not None:
            for slot, index in self.SLOTS.items():
                points[slot] = mesh[index]
        return points


def tracker_for(photo: Photo, dlib_tracker: Tracker | None = None):
    """dlib where its frontal detector finds the face in the still photo; the mesh otherwise."""
    tracker = dlib_tracker or Tracker()
    found = tracker.detector(photo.rgb, 0)
    x0, y0, x1, y1 = photo.main_face.box
    if any(x0 <= r.center().x <= x1 and y0 <= r.center().y <= y1 for r in found):
        return tracker
    return MeshTracker()


@dataclass
class Measures:
    """Per frame, in units of the inter-ocular distance (IOD) of that frame."""

    gap: np.ndarray  # inner-lip gap (largest of the three middle pairs)
    width: np.ndarray  # mouth corner to corner
    nose: np.ndarray  # (frames, 2) nose tip position
    nose_from_eyes: np.ndarray  # (frames, 2) nose tip relative to the eye midpoint
    eyes_open: np.ndarray  # share of dark (iris, pupil) pixels around both eyes
    points: np.ndarray  # (frames, 68, 2) pixels


def measure(frames, box, tracker=None) -> Measures:
    """`tracker`: a Tracker (default) or MeshTracker."""
    tracker = tracker or Tracker()
    if isinstance(tracker, Tracker):
        tracker.last_rect = None
    points = np.stack([tracker.points(frame, box) for frame in frames])
    eye_l, eye_r = points[:, 36:42].mean(axis=1), points[:, 42:48].mean(axis=1)
    iod = np.linalg.norm(eye_r - eye_l, axis=1)
    # 68-point numbering: 61-63 inner upper lip, 67-65 the inner lower lip below them.
    gap = (points[:, [67, 66, 65], 1] - points[:, [61, 62, 63], 1]).max(axis=1) / iod
    width = np.linalg.norm(points[:, 54] - points[:, 48], axis=1) / iod
    nose = points[:, 30] / iod[:, None]
    nose_from_eyes = (points[:, 30] - (eye_l + eye_r) / 2) / iod[:, None]
    return Measures(gap, width, nose, nose_from_eyes, _dark_in_eyes(frames, points, iod), points)


def _dark_in_eyes(frames, points, iod) -> np.ndarray:
    """Per frame, the share of dark pixels (iris, pupil, lashes) around both eyes: it drops when
    the lids close. Landmark detectors are poor at shut eyes, pixels are not."""
    shares = []
    for frame, pts, d in zip(frames, points, iod, strict=True):
        grey = np.asarray(frame, np.float32).mean(axis=2)
        dark = 0
        for eye in (pts[36:42], pts[42:48]):
            (cx, cy), half = eye.mean(axis=0), 0.2 * d
            box = grey[int(cy - 0.6 * half) : int(cy + 0.6 * half) + 1, int(cx - half) : int(cx + half) + 1]
            dark += (
                float(
                    (
                        box
                        < 0.55 * np.median(grey[int(cy + half) : int(cy + 2 * half), int(cx - half) : int(cx + half)])
                    ).mean()
                )
                if box.size
                else 0.0
            )
        shares.append(dark / 2)
    return np.array(shares)


def rms_per_frame(audio: Audio, frame_count: int) -> np.ndarray:
    hop = audio.sample_rate / FPS
    edges = (np.arange(frame_count + 1) * hop).astype(int)
    samples = np.pad(audio.samples, (0, max(0, edges[-1] - len(audio.samples))))
    return np.array(
        [np.sqrt(np.mean(samples[a:b] ** 2)) if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:], strict=True)]
    )


def pauses(audio: Audio, frame_count: int, min_s: float = PAUSE_S, margin: int = 2) -> list[slice]:
    """Frame ranges of silences at least `min_s` long, `margin` frames trimmed off each end
    (lips take a frame or two to close and open)."""
    silent = rms_per_frame(audio, frame_count) < 1e-3
    edges = np.flatnonzero(np.diff(np.concatenate([[0], silent.astype(np.int8), [0]])))
    return [
        slice(a + margin, b - margin)
        for a, b in zip(edges[::2], edges[1::2], strict=True)
        if b - a >= min_s * FPS and b - a > 2 * margin
    ]


def bilabial_frames(phonemes: tuple[Phoneme, ...]) -> list[int]:
    from avatarbot.avatar.lite.visemes import viseme_of

    return [int((p.start + p.end) / 2 * FPS) for p in phonemes if viseme_of(p.symbol) == "closed"]


def closed_in_pauses(m: Measures, spans: list[slice]) -> np.ndarray:
    """Median gap per pause."""
    return np.array([np.median(m.gap[s]) for s in spans])


def closed_on_bilabials(m: Measures, frames: list[int]) -> np.ndarray:
    """Smallest gap within +-BILABIAL_WINDOW frames of each bilabial."""
    n = len(m.gap)
    return np.array([m.gap[max(0, f - BILABIAL_WINDOW) : min(n, f + BILABIAL_WINDOW + 1)].min() for f in frames])


def talking(audio: Audio, frame_count: int) -> np.ndarray:
    return rms_per_frame(audio, frame_count) >= 1e-3


def width_range(m: Measures, where: np.ndarray) -> float:
    low, high = np.percentile(m.width[where], [5, 95])
    return float(high - low)


def loudness_correlation(m: Measures, audio: Audio) -> tuple[float, int]:
    """Best correlation of the gap with the RMS over lags -5..5 frames, and that lag, over the
    talking frames only (with pauses in, any mouth that shuts in silence would score high)."""
    rms = rms_per_frame(audio, len(m.gap))
    speaking = rms >= 1e-3
    best = (-1.0, 0)
    for lag in range(-5, 6):
        shifted = np.roll(m.gap, -lag)
        keep = speaking & np.roll(speaking, -lag)
        if keep.sum() > 10 and np.std(shifted[keep]) > 0:
            best = max(best, (float(np.corrcoef(shifted[keep], rms[keep])[0, 1]), lag))
    return best


def blinks(m: Measures) -> int:
    shut = m.eyes_open < BLINK_DARK_SHARE * np.median(m.eyes_open)
    return int(np.sum(np.diff(shut.astype(int)) == 1))


# --- inputs --------------------------------------------------------------------------------------


def photo(name: str, short_side: int = 512) -> Photo:
    from PIL import Image

    from avatarbot.media.faces import detect_faces, pick_main_face
    from avatarbot.media.images import fit_to_bucket

    if name == "astronaut":
        rgb = np.asarray(Image.open(REPO / "examples" / "astronaut.jpg").convert("RGB"))
    elif name == "open_mouth":
        rgb = np.asarray(Image.open(REPO / "tests" / "data" / "open_mouth.jpg").convert("RGB"))
    elif name == "camera":
        from skimage import data

        # His head and shoulders: at the full picture's 512 px his eyes are 16 px apart, too
        # small for any measurement of a 0.02 IOD gap.
        rgb = np.stack([data.camera()[40:296, 110:366]] * 3, axis=-1)
    elif name == "hopper":
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        rgb = np.asarray(Image.open(path).convert("RGB"))
    else:
        raise ValueError(name)
    faces = detect_faces(rgb)
    found = Photo(rgb=rgb, faces=tuple(faces), main_face=pick_main_face(faces, rgb.shape[1], rgb.shape[0]))
    return fit_to_bucket(found, short_side)


def sound(name: str) -> Audio:
    """`text`: espeak-ng speech with its phoneme timings; `recording`: the same speech without
    them (the spectral classifier's job); `song`: a sung-vowel melody made here (a harmonic
    voice through vowel formants, legato notes with short dips), each framed by pauses."""
    from avatarbot.tts.phonemes import speak_with_phonemes

    if name in ("text", "recording"):
        spoken = speak_with_phonemes(TEXT)
        lead = 0.6
        pad = np.zeros(int(lead * spoken.sample_rate), np.float32)
        phonemes = tuple(Phoneme(p.symbol, p.start + lead, p.end + lead) for p in spoken.phonemes)
        return Audio(
            samples=np.concatenate([pad, spoken.samples, pad]),
            sample_rate=spoken.sample_rate,
            phonemes=phonemes if name == "text" else (),
        )
    if name == "song":
        return _song()
    raise ValueError(name)


def _song(rate: int = 16_000) -> Audio:
    from scipy.signal import lfilter

    notes = [(220, "aa", 0.6), (247, "ee", 0.4), (262, "oo", 0.8), (294, "aa", 0.5), (262, "ee", 0.5), (220, "oo", 1.0)]
    formants = {"aa": (730, 1090, 2440), "ee": (270, 2290, 3010), "oo": (300, 870, 2240)}
    pieces = [np.zeros(int(0.6 * rate), np.float32)]
    for pitch, vowel, seconds in notes:
        t = np.arange(int(seconds * rate)) / rate
        phase = 2 * np.pi * np.cumsum(pitch * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))) / rate
        voice = sum(np.sin(k * phase) / k for k in range(1, 30))
        for f in formants[vowel]:  # two-pole resonators at the vowel's formants
            r, theta = np.exp(-np.pi * 90 / rate), 2 * np.pi * f / rate
            voice = lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], voice)
        envelope = np.minimum(1, np.minimum(t / 0.05, (seconds - t) / 0.06))
        pieces.append((voice * envelope / np.abs(voice).max() * 0.3).astype(np.float32))
    pieces.append(np.zeros(int(0.6 * rate), np.float32))
    return Audio(samples=np.concatenate(pieces), sample_rate=rate)


# --- the report ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", nargs="*", default=list(PHOTOS), choices=PHOTOS)
    parser.add_argument("--sounds", nargs="*", default=list(SOUNDS), choices=SOUNDS)
    parser.add_argument("--sheets", type=Path, default=REPO / "bench" / "lite_sheets")
    parser.add_argument("--motion", type=float, default=1.0)
    args = parser.parse_args()

    from avatarbot.avatar.engine import RenderOptions, frame_count_for
    from avatarbot.avatar.lite.animation import LiteAnimation

    tracker = Tracker()
    args.sheets.mkdir(parents=True, exist_ok=True)
    header = (
        f"{'photo':<11} {'sound':<10} {'pauses shut':>11} {'p/b/m shut':>10} {'width p5-95':>11} "
        f"{'r(gap,rms)':>10} {'lag':>4} {'nose sd':>8} {'nose-eyes sd':>12} {'blinks':>6}"
    )
    print(header)
    for photo_name in args.photos:
        still = photo(photo_name)
        if still.main_face is None:
            print(f"{photo_name:<11} (no face found: lite animates the whole picture, nothing to measure)")
            continue
        for sound_name in args.sounds:
            audio = sound(sound_name)
            options = RenderOptions(seed=1, motion=args.motion)
            animation = LiteAnimation.prepare(still, audio, options, frame_count_for(audio.duration))
            frames = list(animation.frames())
            used = tracker_for(still, tracker)
            m = measure(frames, still.main_face.box, used)
            spans = pauses(audio, len(frames))
            paused = closed_in_pauses(m, spans)
            # A recording has no timings for lite, but it is the text's speech: judge its
            # closures against the text's own phonemes.
            truth = sound("text").phonemes if sound_name == "recording" else audio.phonemes
            labials = bilabial_frames(truth)
            on_labials = closed_on_bilabials(m, labials) if labials else np.array([])
            r, lag = loudness_correlation(m, audio)
            speaking = talking(audio, len(frames))
            print(
                f"{photo_name:<11} {sound_name:<10} {_share(paused):>11} {_share(on_labials):>10} "
                f"{width_range(m, speaking):11.3f} {r:10.2f} {lag:4d} {np.linalg.norm(m.nose.std(axis=0)):8.3f} "
                f"{np.linalg.norm(m.nose_from_eyes.std(axis=0)):12.3f} {blinks(m):6d}"
                + ("" if used is tracker else "  (measured with the mesh: dlib can't follow this face)")
            )
            blink = int(np.argmax(animation.blink))  # the engine's own blink, for the reviewer
            sheet = args.sheets / f"{photo_name}_{sound_name}.png"
            _contact_sheet(frames, still.main_face, m, spans, labials, blink, sheet)
    return 0


def _share(gaps: np.ndarray) -> str:
    return f"{int((gaps <= CLOSED_IOD).sum())}/{len(gaps)}" if len(gaps) else "-"


def _contact_sheet(frames, face: Face, m: Measures, spans, labials, blink: int, path: Path) -> None:
    """Four tiles around the face: the widest opening, a bilabial, a pause, the engine's deepest
    blink, each labelled with its frame number and measured inner-lip gap (IOD)."""
    import cv2

    picks = {"peak": int(np.argmax(m.gap))}
    if labials:  # the middle bilabial, at its most closed frame within the window judged
        f = labials[len(labials) // 2]
        window = np.arange(max(0, f - BILABIAL_WINDOW), min(len(m.gap), f + BILABIAL_WINDOW + 1))
        picks["p/b/m"] = int(window[np.argmin(m.gap[window])])
    if spans:
        middle = spans[len(spans) // 2]
        picks["pause"] = (middle.start + middle.stop) // 2
    picks["blink"] = blink
    x0, y0, x1, y1 = face.box
    pad = 0.15 * (x1 - x0)
    rows = slice(max(0, int(y0 - pad)), int(y1 + pad))
    cols = slice(max(0, int(x0 - pad)), int(x1 + pad))
    tiles = []
    for label, index in picks.items():
        tile = np.ascontiguousarray(frames[index][rows, cols])
        tile = cv2.resize(tile, (TILE_PX, int(TILE_PX * tile.shape[0] / tile.shape[1])), interpolation=cv2.INTER_AREA)
        text = f"{label} {index} {m.gap[index]:+.2f}"
        cv2.putText(tile, text, (2, 11), cv2.FONT_HERSHEY_PLAIN, 0.75, (0, 0, 0), 2)
        cv2.putText(tile, text, (2, 11), cv2.FONT_HERSHEY_PLAIN, 0.75, (255, 255, 255), 1)
        tiles.append(tile)
    from PIL import Image

    # 128 colours keep a sheet near 30 kB, small enough to commit, and plenty to judge a mouth.
    Image.fromarray(np.concatenate(tiles, axis=1)).quantize(128).save(path, optimize=True)


if __name__ == "__main__":
    raise SystemExit(main())
