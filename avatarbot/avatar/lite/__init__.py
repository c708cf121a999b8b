"""The CPU preview engine: a photo made to talk with warps (jaw, lips, blinks, head motion).

Imports numpy and OpenCV only, never torch, so bots and tests can use it anywhere.
"""

from avatarbot.avatar.lite.engine import LiteEngine

__all__ = ["LiteEngine"]
