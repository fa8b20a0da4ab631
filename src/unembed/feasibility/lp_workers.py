"""Where the label LPs of :func:`unembed.feasibility.vocabulary.argmaxable_all` run: in this
process, in a pool of worker processes (each given the head once; SIGINT / SIGTERM handled so
that an interrupted run stops cleanly, never printing a worker's traceback), or as units of a
Ray engine (every witness checked again here)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from unembed.feasibility._core import (
    Feasibility,
    Space,
    check_candidate,
    decide,
    make_problem,
)
from unembed.feasibility.questions import scaled_starts
from unembed.feasibility.result import SearchBound
from unembed.head import Head, owned

if TYPE_CHECKING:  # pragma: no cover
    from unembed.engine import RayEngine

_WORKER: dict[str, Any] = {}


def _init_worker(W: NDArray[np.float64], b: NDArray[np.float64], radius: float | None,
                 rtol: float, labels: tuple[str, ...], centered: bool,
                 box: NDArray[np.float64] | None = None,
                 bound: SearchBound | None = None) -> None:
    # owned(W): the head shares the caller's read-only rows (in a forked worker, the parent's
    # pages), never a second copy of them.
    head = Head(owned(W), b=b if np.any(b != 0) else None, labels=labels, strict=False)
    _WORKER["head"] = head
    sp = Space(head.W, b, radius, rtol, centered=centered, box=box)
    _WORKER["space"] = sp if bound is None else replace(sp, bound=bound)


def _init_pool_worker(*initargs: Any) -> None:
    """Initializer of a pool worker process: SIGINT is ignored (the parent, which sees it
    too, stops the workers) and SIGTERM ends the worker at once, so that an interrupted run
    never prints a worker's traceback; then the head as in :func:`_init_worker`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform != "win32":  # blocked by the parent while it forked (_forking)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    _init_worker(*initargs)


_STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


@contextmanager
def _forking() -> Iterator[None]:
    """SIGINT and SIGTERM held back while the pool forks its workers: a handler that raises
    KeyboardInterrupt inside the interpreter's at-fork hooks would be printed and lost, and
    a worker inherits the mask, so that it sees no signal before its initializer has put its
    own handlers in place (:func:`_init_pool_worker`). A held signal arrives right after."""
    if sys.platform == "win32":
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _lp_label(task: tuple[int, NDArray[np.float64] | None, bool]) -> Feasibility:
    i, start, optimal = task
    head: Head = _WORKER["head"]
    sp: Space = _WORKER["space"]
    starts = [] if start is None else scaled_starts(start, sp)
    return decide(head, sp, make_problem(groups=[[i]]), question="argmaxable",
                  labels=(head.labels[i],), starts=starts, optimal=optimal)


_UNIT_KEY: list[str] = []


def _lp_unit(shared: tuple[Any, ...], task: tuple[int, NDArray[np.float64] | None, bool]
             ) -> Feasibility:
    """One label's LP as a unit of work for an engine (the worker builds the head once)."""
    key, *initargs = shared
    if _UNIT_KEY != [key]:
        _init_worker(*initargs)
        _UNIT_KEY[:] = [key]
    return _lp_label(task)


class Runner:
    """Runs label LPs in this process, in one pool of worker processes (made on first use,
    each worker given the head once), or as units of an engine (every witness checked again
    here)."""

    def __init__(self, head: Head, sp: Space, workers: int,
                 engine: RayEngine | None = None) -> None:
        self.head, self.sp, self.workers = head, sp, workers
        self.ex: ProcessPoolExecutor | None = None
        self.local = False
        self.engine = engine
        self._shared: tuple[Any, ...] | None = None

    def _initargs(self) -> tuple[Any, ...]:
        return (self.head.W, self.sp.b, self.sp.radius, self.sp.rtol, self.head.labels,
                self.sp.centered, self.sp.box, self.sp.bound)

    def _run_engine(self, engine: RayEngine,
                    tasks: list[tuple[int, NDArray[np.float64] | None, bool]],
                    tick: Callable[[], None]) -> dict[int, Feasibility]:
        if self._shared is None:
            import hashlib

            key = hashlib.sha256(np.ascontiguousarray(self.head.W).tobytes()).hexdigest()
            self._shared = (key, *self._initargs())
        got = engine.map(_lp_unit, self._shared, tasks, tick)
        out: dict[int, Feasibility] = {}
        for t, r in zip(tasks, got):
            i = t[0]
            if r.status == "yes":
                ok = r.witness is not None and check_candidate(
                    self.sp, make_problem(groups=[[i]]), r.witness)[0]
                if not ok:  # never trusted unchecked: decide it here instead
                    r = self._local([t], lambda: None)[i]
            out[i] = r
        return out

    def _local(self, tasks: list[tuple[int, NDArray[np.float64] | None, bool]],
               tick: Callable[[], None]) -> dict[int, Feasibility]:
        if not self.local:
            _init_worker(*self._initargs())
            self.local = True
            _UNIT_KEY.clear()
        out: dict[int, Feasibility] = {}
        for t in tasks:
            out[t[0]] = _lp_label(t)
            tick()
        return out

    def run(self, tasks: list[tuple[int, NDArray[np.float64] | None, bool]],
            tick: Callable[[], None]) -> dict[int, Feasibility]:
        out: dict[int, Feasibility] = {}
        if not tasks:
            return out
        if self.engine is not None:
            return self._run_engine(self.engine, tasks, tick)
        if self.workers <= 1 or (len(tasks) == 1 and self.ex is None):
            return self._local(tasks, tick)
        if self.ex is None:
            self.ex = ProcessPoolExecutor(
                max_workers=self.workers, initializer=_init_pool_worker,
                initargs=self._initargs())
        with _forking():  # the workers are forked on the first submission (map submits all)
            results = self.ex.map(_lp_label, tasks, chunksize=1)
        for t, r in zip(tasks, results):
            out[t[0]] = r
            tick()
        return out

    def close(self) -> None:
        if self.ex is not None:
            self.ex.shutdown()
        _WORKER.clear()


__all__ = ["Runner"]
