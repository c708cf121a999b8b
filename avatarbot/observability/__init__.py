"""Health, readiness and Prometheus metrics for workers and bots.

Off by default; `[metrics] port` (env `AVATARBOT_METRICS__PORT`) turns it on. Each process then
serves, on `[metrics] host` (127.0.0.1 unless set):
- `/healthz`: the process is alive and serving (200);
- `/readyz`: it can do its job now: Redis answers, and the worker's engine is loadable or the
  bot is connected to its platform (200), else 503 with the reasons, one per line;
- `/metrics`: Prometheus text format.

The modules:
- `metrics`: every metric we export (names, labels, buckets): the one place to look them up;
- `render`: what the render task records (queue wait, render time, diffusion steps, GPU memory);
- `jobs`: jobs by state, read from Redis when scraped;
- `readiness`: the checks behind `/readyz`;
- `server`: the small HTTP server, on a thread of the process it reports on.
"""
