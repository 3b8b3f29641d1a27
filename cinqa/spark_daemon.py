"""Spark's Python worker daemon, quiet when Spark drops a connection: ``spark.python.daemon.module``.

Spark starts one daemon per executor (``python -m pyspark.daemon``), which forks a worker per
connection from the JVM. When the JVM closes a connection before the worker has answered (an idle
worker let go, a task cancelled once its result was known), the forked worker's write fails with
``BrokenPipeError`` and pyspark prints its traceback to the terminal: several per run, each
looking like a failure though nothing failed and every result is complete. :func:`worker` ends
such a worker quietly; every other error is pyspark's to report, as before. ``cinqa.spark.SETTINGS``
names this module, so every session cinqa starts uses it.
"""

from __future__ import annotations

from typing import Any

from pyspark import daemon

_pyspark_worker = daemon.worker


def worker(sock: Any, authenticated: bool) -> int:
    """Run pyspark's worker on ``sock``; return 1 (this worker is done) if the JVM closed the connection."""
    try:
        return _pyspark_worker(sock, authenticated)
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    daemon.worker = worker  # manager() forks and calls the module's worker by name
    daemon.manager()
