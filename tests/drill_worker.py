"""`avatarbot worker`, with every render step slowed down: the worker process of the fault drills.

    AVATARBOT_DRILL_STEP_DELAY_S=0.1 python tests/drill_worker.py --concurrency 1

It runs the real CLI entry point (`avatarbot.cli.main(["worker", ...])`: prefork pool, the real
render task, leases, orphan recovery). The only difference from production is a sleep before
each of the engine's cancel checks, so that a render of a short test clip lasts long enough for
a drill to kill something in the middle of it, without burning CPU on a long clip. The engine
itself is created lazily in the pool process, as in production.
"""

from __future__ import annotations

import os
import sys
import time


class _SlowedLiteEngine:
    """The lite engine, loaded on first use, sleeping before every cancel check."""

    name = "lite"

    def __init__(self, delay_s: float):
        self.delay_s = delay_s
        self._inner = None

    def render(self, photo, audio, options, progress=None, should_cancel=None):
        if self._inner is None:
            from avatarbot.avatar import get_engine

            self._inner = get_engine("lite")

        def slow_check() -> bool:
            time.sleep(self.delay_s)
            return bool(should_cancel and should_cancel())

        return self._inner.render(photo, audio, options, progress=progress, should_cancel=slow_check)


def main() -> int:
    from avatarbot import cli
    from avatarbot.tasks import render_job

    delay_s = float(os.environ.get("AVATARBOT_DRILL_STEP_DELAY_S", "0"))
    if delay_s > 0:
        render_job.install_engine("lite", _SlowedLiteEngine(delay_s))
    return cli.main(["worker", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
