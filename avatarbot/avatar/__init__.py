"""Engines that turn a photo and audio into talking frames. Nothing here knows about chats."""

from avatarbot.avatar.engine import FPS, Clip, Engine, Progress, RenderOptions

__all__ = ["FPS", "Clip", "Engine", "Progress", "RenderOptions", "get_engine"]


def get_engine(name: str, settings=None) -> Engine:
    """The engine called `name`, imported only now so that `lite` never pulls in torch."""
    if name == "lite":
        from avatarbot.avatar.lite import LiteEngine

        return LiteEngine()
    if name == "hunyuan":
        from avatarbot.avatar.hunyuan.engine import HunyuanEngine

        return HunyuanEngine.from_settings(settings)
    raise ValueError(f"unknown engine {name!r}; choose 'lite' or 'hunyuan'")
