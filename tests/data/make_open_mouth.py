"""Makes tests/data/open_mouth.jpg: Grace Hopper's portrait (public domain, shipped by matplotlib as
mpl-data/sample_data/grace_hopper.jpg) with her mouth opened by a simple warp and a painted inside.

There is no open-mouthed photo in any installed wheel, and tests must not download one. This edit
is done once, offline, and independently of the lite engine (a plain cv2.remap with its own
shape), so the engine is tested on a photo it did not make. Run from the repo root:
    PYTHONPATH=$PWD python tests/data/make_open_mouth.py
"""

from pathlib import Path

import cv2
import matplotlib
import numpy as np

from avatarbot.media.faces import detect_faces

OPENING_IOD = 0.22  # how far the lower lip and jaw drop, in inter-ocular distances
CAVITY_RGB = np.array([45.0, 18.0, 20.0])
TONGUE_RGB = np.array([150.0, 70.0, 72.0])


def main() -> None:
    source = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    rgb = cv2.cvtColor(cv2.imread(str(source)), cv2.COLOR_BGR2RGB)
    rgb = rgb[60:444, 96:416].copy()  # 320 x 384 around the face: small enough to commit
    face = detect_faces(rgb)[0]
    iod = float(np.hypot(*np.subtract(face.landmarks["right_eye"], face.landmarks["left_eye"])))
    drop = OPENING_IOD * iod
    upper = face.contour("inner_lip_upper")
    lower = face.contour("inner_lip_lower")
    chin_y = face.landmarks["chin"][1]
    line_y = np.interp(np.arange(rgb.shape[1]), lower[:, 0], (upper[:, 1] + lower[:, 1]) / 2)
    centre_x = (upper[0, 0] + upper[-1, 0]) / 2
    half_width = (upper[-1, 0] - upper[0, 0]) / 2

    ys, xs = np.mgrid[0 : rgb.shape[0], 0 : rgb.shape[1]].astype(np.float32)
    lens = np.sqrt(np.clip(1 - ((xs - centre_x) / half_width) ** 2, 0, 1))  # lips part in a lens...
    jaw = np.clip(1 - ((xs - centre_x) / (2.2 * half_width)) ** 2, 0, 1)  # ...the jaw drops as a whole
    below = np.clip((ys - line_y[None, :]) / 3.0, 0, 1)
    to_jaw = np.clip((ys - line_y[None, :]) / (0.25 * iod), 0, 1)
    fade = np.clip(1 - (ys - chin_y) / (0.6 * iod), 0, 1)  # fading out on the neck
    shift = drop * (lens + (jaw - lens) * to_jaw) * below * fade
    opened = cv2.remap(rgb, xs, ys - shift.astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    # The gap: between the upper inner lip and the dropped lower inner lip.
    lens_at = np.sqrt(np.clip(1 - ((lower[:, 0] - centre_x) / half_width) ** 2, 0, 1))
    lower_dropped = lower + np.stack([np.zeros(len(lower)), drop * lens_at], 1)
    # The opening ends a little inside the lip corners, as a real one does.
    inset = np.stack([centre_x + (upper[:, 0] - centre_x) * 0.88, upper[:, 1]], 1)
    inset_lower = np.stack([centre_x + (lower_dropped[:, 0] - centre_x) * 0.88, lower_dropped[:, 1]], 1)
    polygon = np.concatenate([inset, inset_lower[::-1]]).round().astype(np.int32)
    mask = np.zeros(rgb.shape[:2], np.uint8)
    cv2.fillPoly(mask, [polygon], 255)
    mask = cv2.GaussianBlur(mask.astype(np.float32) / 255, (0, 0), 0.8)[..., None]
    depth = np.clip((ys - upper[:, 1].min()) / max(drop, 1), 0, 1)[..., None]
    inside = CAVITY_RGB + (TONGUE_RGB - CAVITY_RGB) * np.clip(depth - 0.55, 0, 1) * 1.2
    out = opened * (1 - mask) + inside * mask
    path = Path(__file__).with_name("open_mouth.jpg")
    cv2.imwrite(
        str(path),
        cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR),
        [cv2.IMWRITE_JPEG_QUALITY, 88],
    )
    print(path, path.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
