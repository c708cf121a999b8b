"""Metrics from more than one process: a worker's prefork pool.

Renders happen in Celery's pool processes while the worker's parent serves `/metrics`, so a
worker runs prometheus-client in its multiprocess mode: `enable_multiprocess()` points
`PROMETHEUS_MULTIPROC_DIR` at a fresh directory before prometheus_client is first imported,
every process (the forked pool included) writes its samples to memory-mapped files there, and
the parent adds them up when scraped. Bots are one process and use the default registry.

This module imports prometheus_client only inside its functions, so it can run first.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def enable_multiprocess() -> str:
    """Switch this process, and those it forks, to multiprocess mode. Returns the directory;
    remove it with `disable_multiprocess` when the process ends.

    prometheus_client picks its value storage once, at import, hence the check."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before multiprocess mode was enabled")
    directory = tempfile.mkdtemp(prefix="avatarbot-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    return directory


def disable_multiprocess(directory: str) -> None:
    os.environ.pop(MULTIPROC_ENV, None)
    shutil.rmtree(directory, ignore_errors=True)


def serving_registry():
    """What `/metrics` serves in this process: in multiprocess mode a fresh registry that reads
    every process's files, else the default one (which adds process and platform metrics)."""
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return registry
    return REGISTRY
