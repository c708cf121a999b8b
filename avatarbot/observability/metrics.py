"""Every metric avatarbot exports: one place for names, labels and buckets.

Only counters and histograms live here, because they add up across a worker's pool processes
without a per-process mode (see `processes`); the one gauge, jobs by state, is read from Redis
when scraped (`observability.jobs`). Label values are closed sets (engines, qualities,
platforms, outcomes, error codes), never ids.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

_GIB = 1024**3

# --- read from Redis at scrape time (observability.jobs) ------------------------------------------
JOBS_BY_STATE = "avatarbot_jobs"
JOBS_BY_STATE_HELP = "Jobs not yet delivered, by state, across every platform."
REDIS_UP = "avatarbot_redis_up"
REDIS_UP_HELP = "1 when this process reached Redis at the last scrape."

# --- worker: the render task ---------------------------------------------------------------------
QUEUE_WAIT = Histogram(
    "avatarbot_queue_wait_seconds",
    "Seconds from a job's submission to the first time a worker took it.",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
)
RENDER_SECONDS = Histogram(
    "avatarbot_render_seconds",
    "Seconds to render and encode a finished clip, by engine and the quality it was rendered at.",
    ["engine", "quality"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 2700, 3600, 5400, 7200),
)
RENDERS = Counter(
    "avatarbot_renders",
    "Render attempts by how they ended: done, failed, cancelled, or lost (another worker took the job over).",
    ["engine", "outcome", "code"],
)
OUT_OF_MEMORY_RETRIES = Counter(
    "avatarbot_out_of_memory_retries",
    "Renders that ran out of memory and were retried at a lower quality.",
    ["engine", "quality"],
)
DIFFUSION_STEP_SECONDS = Histogram(
    "avatarbot_diffusion_step_seconds",
    "Seconds per denoising step of HunyuanVideo-Avatar (every window, both guidance passes), by quality.",
    ["quality"],
    buckets=(0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300),
)
PEAK_GPU_MEMORY = Histogram(
    "avatarbot_peak_gpu_memory_bytes",
    "Peak GPU memory allocated by torch during one render, by engine and quality.",
    ["engine", "quality"],
    buckets=tuple(gib * _GIB for gib in (2, 4, 8, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 120, 141, 192)),
)

# --- bots: the request flow ----------------------------------------------------------------------
ACK_SECONDS = Histogram(
    "avatarbot_ack_seconds",
    "Seconds from a request reaching the flow to its first answer (acknowledgement or refusal), by platform.",
    ["platform"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10),
)
REFUSALS = Counter(
    "avatarbot_refusals",
    "Requests refused with a message to the user, by platform and error code.",
    ["platform", "code"],
)
DELIVERIES = Counter(
    "avatarbot_deliveries",
    "Outcomes posted to chats, by platform and how it went: clip, message (a failure or a clip that "
    "could not be sent, explained), retry (a transient error; offered again), gave_up, undeliverable.",
    ["platform", "outcome"],
)
