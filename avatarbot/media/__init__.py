"""Bytes in, checked arrays out: photos, audio, and the finished video.

- `images`: decode and check a photo, find its faces, fit it to an engine's size buckets.
- `audio`: decode any voice note, song or video soundtrack to mono float32, checked.
- `video`: encode frames + audio to a chat-ready MP4, fit it to an upload limit, thumbnail, probe.
"""

from avatarbot.media.types import Audio, Face, Photo

__all__ = ["Audio", "Face", "Photo"]
