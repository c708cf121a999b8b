"""The HTTP endpoints `/healthz`, `/readyz` and `/metrics`, served from a daemon thread.

prometheus-client's own `start_http_server` serves only metrics, so this wraps its WSGI app in a
three-route app on the standard library's WSGI server (one thread per request: a slow
readiness probe never holds up a scrape).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from avatarbot.observability.readiness import Check

log = logging.getLogger(__name__)


def _text_headers() -> list[tuple[str, str]]:
    """A new list each time: the WSGI server adds Content-Length to the list it is given."""
    return [("Content-Type", "text/plain; charset=utf-8")]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """Probes come every few seconds: keep them out of the log."""

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        log.debug("%s " + format, self.address_string(), *args)


def health_app(registry, checks: Mapping[str, Check]):
    metrics_app = make_wsgi_app(registry)

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics_app(environ, start_response)
        if path == "/healthz":
            start_response("200 OK", _text_headers())
            return [b"ok\n"]
        if path == "/readyz":
            problems = [reason for reason in (check() for check in checks.values()) if reason]
            if problems:
                start_response("503 Service Unavailable", _text_headers())
                return ["".join(f"{reason}\n" for reason in problems).encode()]
            start_response("200 OK", _text_headers())
            return [f"ready: {', '.join(checks)}\n".encode()]
        start_response("404 Not Found", _text_headers())
        return [b"not found: try /healthz, /readyz or /metrics\n"]

    return app


class HealthServer:
    """Serving until `stop()` (or the process ends: the thread is a daemon)."""

    def __init__(self, host: str, port: int, registry, checks: Mapping[str, Check]):
        self._server = make_server(
            host, port, health_app(registry, checks), server_class=_ThreadingServer, handler_class=_QuietHandler
        )
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, name="avatarbot-metrics", daemon=True)
        self._thread.start()
        log.info("serving /healthz, /readyz and /metrics on http://%s:%d", self.host, self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def start_health_server(settings, checks: Mapping[str, Check], registry=None) -> HealthServer | None:
    """The endpoints on `[metrics] host:port`, or None when metrics are off (no port set)."""
    if settings.metrics.port is None:
        return None
    from avatarbot.observability.processes import serving_registry

    return HealthServer(settings.metrics.host, settings.metrics.port, registry or serving_registry(), checks)
