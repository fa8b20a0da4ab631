"""Past one process: the audit's streaming pass and the argmaxability checks on Ray.

Ray is imported only here, and only when a :class:`RayEngine` is used (``--engine ray``):
without it nothing of Ray is loaded. ``RayEngine(workers=N)`` starts a local Ray with N CPUs
when none is running (and stops it afterwards); ``address=`` joins a running cluster
(``ray start --head`` on one machine, ``ray start --address=HEAD:6379`` on the others;
docs/ray.md).

Work units are plain functions of this module, run as Ray tasks that Ray retries when their
worker dies (``max_retries``): a unit's result reaches the driver only when the unit has
finished, so a unit re-run after a crash is counted once.

* The audit (:meth:`RayEngine.collect`): every worker loads the model itself (the loader the
  driver passes: the same path and options) and opens the data itself (the same file path:
  on a cluster, a path every node can read). The label set is chosen first, from the first
  predictions, exactly as a single pass chooses it (:func:`unembed.behaviour.select_labels`);
  then worker ``w`` of ``N`` runs the batches ``b`` with ``b % N == w``
  (:func:`unembed.behaviour.run_shard`) and returns its accumulators; the driver merges them.
* ``argmaxable`` (:func:`unembed.feasibility.argmaxable_all` with ``engine=``): blocks of
  labels for the fast pass and single-label LPs are units; the head goes to the object store
  once; every witness of an LP is checked again on the driver.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from unembed._checks import UnembedError
from unembed._progress import progress_bars
from unembed.behaviour import (
    Behaviour,
    LabelSelection,
    Partial,
    PassOptions,
    Selection,
    behaviour_of,
    label_selection,
    run_shard,
    select_labels,
)
from unembed.data import DataSource
from unembed.head import Head, LabelRef

if TYPE_CHECKING:
    from unembed.model import LoadedModel

__all__ = ["RayEngine", "Sharded"]

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")

ModelLoader = Callable[[], "LoadedModel"]
DataOpener = Callable[["LoadedModel"], DataSource]

#: Per worker process: models loaded by a loader (keyed by the loader's pickle digest), so a
#: worker that runs several units loads its model once.
_MODELS: dict[str, LoadedModel] = {}


def _model(key: str, load_model: ModelLoader) -> LoadedModel:
    if key not in _MODELS:
        _MODELS.clear()
        _MODELS[key] = load_model()
    return _MODELS[key]


def _select_unit(shared: tuple[str, ModelLoader, DataOpener, LabelSelection, PassOptions],
                 _item: int) -> Selection:
    key, load_model, open_data, choice, opts = shared
    model = _model(key, load_model)
    return select_labels(model, open_data(model), choice, top_k=opts.top_k,
                         batch_size=opts.batch_size, logits=opts.logits)


def _shard_unit(shared: tuple[str, ModelLoader, DataOpener, Selection, PassOptions],
                item: tuple[int, int]) -> Partial:
    key, load_model, open_data, sel, opts = shared
    shard, n_shards = item
    model = _model(key, load_model)
    return run_shard(model, open_data(model), sel, shard=shard, n_shards=n_shards,
                     top_k=opts.top_k, batch_size=opts.batch_size,
                     keep_hidden=opts.keep_hidden, logits=opts.logits)


def _call(fn: Callable[[S, T], R], shared: S, item: T) -> R:
    return fn(shared, item)


@contextmanager
def _own_signal_handlers() -> Iterator[None]:
    """Keep this process's SIGTERM and SIGINT handlers across ``ray.init``: Ray's core worker
    installs a C-level failure handler for them in the driver, which prints a C++ stack and
    aborts; the command line's own handler stops the run and exits 130 in one line."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    kept = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in kept.items():
            if h is not None:
                signal.signal(s, h)


@dataclass
class RayEngine:
    """Ray as the engine: ``workers`` units in flight (one per worker), on a local Ray started
    for the purpose (``address=None``, none running) or on the cluster at ``address``.

    ``gpus_per_worker`` reserves GPUs for each unit (a worker's model then runs on the GPU Ray
    assigns it); ``max_retries`` is how often a unit whose worker died is run again.
    """

    workers: int = 2
    address: str | None = None
    gpus_per_worker: float = 0.0
    max_retries: int = 3
    _started: bool = field(default=False, init=False, repr=False)
    #: what the engine decided that the caller did not ask for (workers bounded), in words
    notes: list[str] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise UnembedError("must be at least 1", argument="workers", function="RayEngine",
                               got=self.workers)
        if self.max_retries < 0:
            raise UnembedError("must be at least 0", argument="max_retries", function="RayEngine",
                               got=self.max_retries)

    # ------------------------------------------------------------------------ ray itself
    def _ray(self) -> Any:
        try:
            import ray
        except ImportError:
            raise UnembedError("--engine ray needs the 'ray' package (pip install "
                               "'unembed[ray]').") \
                from None
        if not ray.is_initialized():
            import logging

            # workers' output and Ray's own logging stay in Ray's log files (a stopped run
            # prints no worker or C++ stack on this terminal)
            quiet: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                     "configure_logging": True, "logging_level": logging.ERROR}
            try:
                with _own_signal_handlers():
                    if self.address is None:
                        cpus = os.cpu_count() or 1
                        if self.workers > cpus:
                            self._bound(cpus, f"this machine has {cpus} CPUs")
                        ray.init(num_cpus=self.workers, **quiet)
                    else:
                        reachable(self.address)
                        ray.init(address=self.address, **quiet)
            except ConnectionError as e:
                raise UnembedError(
                    f"cannot reach the Ray cluster at {self.address!r}: {e}") from None
            except SystemExit as e:  # SIGTERM while ray.init held its own handler
                import signal

                if e.code != signal.SIGTERM:
                    raise
                ray.shutdown()
                raise KeyboardInterrupt from None
            self._started = True
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if 1 <= cpus < self.workers:
            self._bound(cpus, f"the Ray cluster has {cpus} CPUs")
        return ray

    def _bound(self, n: int, why: str) -> None:
        self.notes.append(f"--workers {self.workers} bounded to {n}: {why}")
        self.workers = n

    def shards(self, units: int | None) -> int:
        """The number of shards for ``units`` units of work (None: unknown): the workers,
        at most one per unit."""
        self._ray()
        if units is not None and 1 <= units < self.workers:
            self._bound(units, f"the work has {units} unit(s) (batches of the data)")
        return self.workers

    def close(self) -> None:
        """Stop the local Ray this engine started (a cluster joined is left running)."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def __enter__(self) -> RayEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def map(self, fn: Callable[[S, T], R], shared: S, items: Sequence[T],
            tick: Callable[[], None] | None = None) -> list[R]:
        """``[fn(shared, item) for item in items]``, one Ray task per item (``shared`` put in
        the object store once), results in the order of ``items``."""
        ray = self._ray()
        remote = ray.remote(num_cpus=1, num_gpus=self.gpus_per_worker,
                            max_retries=self.max_retries, retry_exceptions=False)(_call)
        ref = ray.put(shared)
        pending = {remote.remote(fn, ref, item): i for i, item in enumerate(items)}
        out: dict[int, R] = {}
        from ray.exceptions import RayTaskError

        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for d in done:
                i = pending.pop(d)
                try:
                    out[i] = ray.get(d)
                except RayTaskError as e:  # the unit raised: show the library's own error
                    cause = e.cause if isinstance(e.cause, Exception) else e
                    raise cause from None
                if tick is not None:
                    tick()
        return [out[i] for i in range(len(items))]

    # ------------------------------------------------------------------------ the audit
    def collect(self, head: Head, load_model: ModelLoader, open_data: DataOpener, *,
                label_set: Sequence[LabelRef] | None = None, top_n: int = 40, top_k: int = 5,
                batch_size: int = 32, keep_hidden: int = 4096,
                selection_predictions: int = 8192, progress: bool = True,
                logits: Literal["model", "head"] = "model",
                labels: Sequence[LabelRef] | None = None) -> Behaviour:
        """:func:`unembed.behaviour.collect` (the same arguments) in ``workers`` shards: the
        same label set, counts and witnesses, sums and moments equal up to float64 rounding.

        ``load_model()`` must give, on every worker, the model ``head`` belongs to;
        ``open_data(model)`` the same data source (same file, window, limit).
        """
        choice = label_selection(label_set, top_n, selection_predictions, labels=labels,
                                 where="RayEngine.collect")
        return self.collect_selected(head, load_model, open_data, choice,
                                     PassOptions(top_k, batch_size, keep_hidden, logits),
                                     progress=progress)

    def collect_selected(self, head: Head, load_model: ModelLoader, open_data: DataOpener,
                         choice: LabelSelection, opts: PassOptions, *,
                         progress: bool = True, units: int | None = None) -> Behaviour:
        """:meth:`collect` with the label selection and the pass options as objects;
        ``units`` (when known) bounds the shards: at most one per batch of the data."""
        key = hashlib.sha256(pickle.dumps(load_model)).hexdigest() if _picklable(
            load_model) else str(id(load_model))
        sel = self.map(_select_unit, (key, load_model, open_data, choice, opts), [0])[0]
        n = self.shards(units)
        with progress_bars(progress) as bars:
            task = bars.add("behaviour (ray shards)", total=n)
            parts = self.map(_shard_unit, (key, load_model, open_data, sel, opts),
                             [(w, n) for w in range(n)], lambda: bars.advance(task))
        return behaviour_of(head, parts, sel, top_k=opts.top_k, keep_hidden=opts.keep_hidden)


@dataclass(frozen=True)
class Sharded:
    """An audit's streaming pass on an engine: how every worker loads the model and opens the
    data (both picklable: a ``functools.partial`` of :func:`unembed.sources.load` and of
    :func:`unembed.data.open_data` with the paths and options)."""

    engine: RayEngine
    load_model: ModelLoader
    open_data: DataOpener
    #: at most this many batches in the data (None: unknown); bounds the shards
    units: int | None = None


#: Seconds to wait for a Ray cluster's address to accept a connection (``--address``).
CONNECT_TIMEOUT_S = 15.0


def reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse a cluster ``address`` (``HOST:PORT`` or ``ray://HOST:PORT``) that accepts no
    connection within ``timeout`` seconds (Ray itself would keep trying for minutes);
    ``auto`` and other forms are left to Ray."""
    import socket

    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as e:
        why = "no answer" if isinstance(e, TimeoutError) else (e.strerror or type(e).__name__)
        raise UnembedError(f"must be a Ray cluster that can be reached; "
                           f"{address} accepted no connection within {timeout:g} s ({why})",
                           argument="address", function="RayEngine", got=address) from None


def _picklable(obj: object) -> bool:
    try:
        pickle.dumps(obj)
    except Exception:
        return False
    return True
