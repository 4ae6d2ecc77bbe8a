"""The one thread that owns the ``OmsCore``.

The core keeps one SQLite connection, and Python's ``sqlite3`` refuses a connection in any
thread but the one that opened it; gRPC serves each call on a pool thread. So the core is
built on a dedicated thread and every call runs there, one at a time: the core
serializes its calls anyway (one connection, one lock), so nothing is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from oms_core.app.service import OmsCore

T = TypeVar("T")


class CoreThread:
    """Runs ``fn(core)`` on the core's own thread and returns (or raises) its result."""

    def __init__(self, factory: Callable[[], OmsCore]) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="oms-core")
        try:
            self._core = self._executor.submit(factory).result()
        except BaseException:
            self._executor.shutdown(wait=False)
            raise
        self._closed = False

    def run(self, fn: Callable[[OmsCore], T]) -> T:
        return self._executor.submit(fn, self._core).result()

    def close(self) -> None:
        """Close the core on its thread, after the calls already queued."""
        if self._closed:
            return
        self._closed = True
        try:
            self.run(lambda core: core.close())
        finally:
            self._executor.shutdown(wait=True)
