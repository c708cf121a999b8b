"""The request flow: a job's whole life for every chat surface.

Intake (checks, downloads, quotas, repeats), the status message and its throttled edits,
delivery exactly once, buttons and who may press them, per-chat config. It depends on `tasks/`
(records, blobs, queue) and `media/`; it never imports a surface. Surfaces implement
`traits.Surface` / `traits.Answer` and call the flow (see `flow.py`).
"""
