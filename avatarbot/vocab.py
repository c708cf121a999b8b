"""Closed vocabularies, one owner each: job states, qualities, platforms, stages, and the one
quality table every layer reads (the flow checks a choice against it, the engines size the photo
by it, the encoder takes its CRF and preset from it, the worker steps down by it after running out
of GPU memory).

`StrEnum` members compare equal to their strings, so records in Redis and JSON stay plain text and
older records read back unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class JobState(StrEnum):
    """queued -> running -> encoding -> done -> delivered, or failed / cancelled."""

    QUEUED = "queued"
    RUNNING = "running"
    ENCODING = "encoding"
    DONE = "done"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATES = frozenset({JobState.QUEUED, JobState.RUNNING, JobState.ENCODING})
OUTCOME_STATES = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})  # finished, not yet delivered


class Platform(StrEnum):
    TELEGRAM = "telegram"
    DISCORD = "discord"
    WEB = "web"
    CLI = "cli"


class Stage(StrEnum):
    """What a running job reports it is doing (progress `stage`)."""

    QUEUED = "queued"
    PREPARING = "preparing"
    RENDERING = "rendering"
    ENCODING = "encoding"


class Quality(StrEnum):
    FAST = "fast"
    STANDARD = "standard"
    HIGH = "high"


@dataclass(frozen=True)
class QualityPreset:
    short_side: int  # the photo's short side in pixels (upstream's 384 / 512 / 704 presets)
    crf: int  # x264 constant rate factor (lower: better and bigger)
    x264_preset: str  # x264 speed preset
    after_out_of_memory: Quality | None  # the quality a render retries with when the GPU ran out


QUALITY_TABLE: dict[Quality, QualityPreset] = {
    Quality.FAST: QualityPreset(384, 28, "ultrafast", None),
    Quality.STANDARD: QualityPreset(512, 23, "veryfast", Quality.FAST),
    Quality.HIGH: QualityPreset(704, 19, "faster", Quality.STANDARD),
}
