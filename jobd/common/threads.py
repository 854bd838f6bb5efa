"""Threads for users' synchronous code: bounded, and never in the way of a stop.

A synchronous Python action (or persister, or tenant list) runs in a worker thread so it
cannot block the event loop. Python cannot stop a thread, so a call that hangs keeps its
thread until it returns. Two rules follow:
- each action has its own pool of threads (`DaemonThreads(size)`): one action's hung calls
  can take only its own threads, never another action's;
- the threads are daemonic: a stuck call never keeps the process from exiting, so SIGTERM
  ends the daemon within `shutdown_grace` (the standard ThreadPoolExecutor joins every
  thread at exit, and a hung one would hold the process forever).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from queue import SimpleQueue
from typing import Any, TypeVar

T = TypeVar("T")
_Work = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class DaemonThreads(Executor):
    """An Executor of at most `size` daemon threads, started as work arrives."""

    def __init__(self, size: int, name: str) -> None:
        if size < 1:
            raise ValueError("a thread pool needs at least one thread")
        self.size = size
        self.name = name
        self._work: SimpleQueue[_Work | None] = SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0

    @property
    def busy(self) -> int:
        """Threads running a call now (a hung call counts until it returns)."""
        with self._lock:
            return len(self._threads) - self._idle

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        self._work.put((future, fn, args, kwargs))
        with self._lock:
            if self._idle == 0 and len(self._threads) < self.size:
                thread = threading.Thread(
                    target=self._run, name=f"{self.name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Let idle threads end; a busy one ends with its call (it is never waited for)."""
        with self._lock:
            threads = len(self._threads)
        for _ in range(threads):
            self._work.put(None)

    def _run(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            work = self._work.get()
            with self._lock:
                self._idle -= 1
            if work is None:
                return
            future, fn, args, kwargs = work
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # handed to the caller, whatever it is
                future.set_exception(exc)
            else:
                future.set_result(result)
