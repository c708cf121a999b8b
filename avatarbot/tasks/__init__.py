"""The render queue: Celery on Redis, job records, blob storage, and the render task.

Importing this package imports nothing heavy: no Celery, no torch. The modules:
- `app`: the Celery app (long GPU jobs: late acks, prefetch 1, the `gpu` queue)
- `jobs`: job records and their state machine (Lua scripts, leases)
- `blobs`: content-addressed storage for inputs and clips (Redis or a directory)
- `quotas`, `dedup`: limits and duplicate detection at submit time
- `render_job`: the task the worker runs
- `worker`: `avatarbot worker`; `client`: `avatarbot animate --queue`
- `redis_server`: the embedded redis-server of `avatarbot run` (and the tests)
"""
