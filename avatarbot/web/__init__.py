"""The local web page: try avatarbot in a browser, no bot token needed. A third surface over the
same job lifecycle as the Discord and Telegram bots (`surface.py` implements the flow's
`traits.Surface`; `server.py` hands form submissions and button presses to the `Lifecycle`),
served by `avatarbot web` or by `avatarbot run` with `[web] enabled`.

Why a small aiohttp page and not Gradio, the field's usual demo UI: the render must go through
our Celery queue, with the flow's checks, quotas, repeats and delivery bookkeeping. Gradio brings
its own request queue, worker threads and event loop, which we would have to bypass at every
step (its progress and cancel are tied to its own queue), and a large dependency tree (FastAPI,
uvicorn, pandas, a bundled front end) for one form. aiohttp is already a dependency, runs on the
same asyncio loop as the flow, and the page is one HTML file, one script and a small JSON API
(`server.py`) that a test drives in a real browser. The in-browser recorder is the browser's own
MediaRecorder, so nothing is lost against Gradio's audio widget.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def run_web(settings, host: str | None = None, port: int | None = None) -> int:
    from aiohttp import web

    from avatarbot.web.server import create_app, is_loopback

    host = host or settings.web.host
    port = port or settings.web.port
    password = settings.web.resolved_password()
    loopback = is_loopback(host)
    if not password and not loopback:
        log.warning(
            "the web page listens on %s without a password: anyone who reaches it can queue renders; "
            "set web.password or web.password_file",
            host,
        )
    log.info("web page on http://%s:%d/%s", host, port, " (password required)" if password else "")
    web.run_app(create_app(settings, password, loopback_only=loopback), host=host, port=port, print=None)
    return 0
