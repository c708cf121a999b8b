"""Bytes in, checked arrays out: photos, audio, and the finished video.

- `images`: decode and check a photo, find its faces, fit it to an engine's size buckets.
- `audio`: decode any voice note, song or video soundtrack to mono float32, checked.
- `video`: encode frames + audio to a chat-ready MP4, fit it to an upload limit, thumbnail, probe.
"""

from avatarbot.media.audio import load_audio
from avatarbot.media.faces import detect_faces, pick_main_face
from avatarbot.media.ffmpeg import ffmpeg_exe
from avatarbot.media.images import fit_to_bucket, load_photo
from avatarbot.media.types import Audio, Face, Photo
from avatarbot.media.video import VideoInfo, encode_mp4, fit_to_size, make_thumbnail, probe

__all__ = [
    "Audio",
    "Face",
    "Photo",
    "VideoInfo",
    "detect_faces",
    "encode_mp4",
    "ffmpeg_exe",
    "fit_to_bucket",
    "fit_to_size",
    "load_audio",
    "load_photo",
    "make_thumbnail",
    "pick_main_face",
    "probe",
]
