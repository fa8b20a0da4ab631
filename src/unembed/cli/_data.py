"""``--data`` for the views that need data besides the head (``logit``; ``coprob`` for
neighbours): hidden states read from a file or streamed through the loaded model, as the audit
does, and a record naming them for every result."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from unembed.cli._options import DATA, add_stream_args, shared_group
from unembed.model import LoadedModel
from unembed.moments import Moments


def add_data_args(p: argparse.ArgumentParser, help: str | None = None) -> None:
    """--data FILE (with --max-inputs, --batch-size, --window), in the shared group "data";
    ``help`` says what the command uses the data for (default: the data views)."""
    shared_group(p, DATA).add_argument(
        "--data", metavar="FILE",
        help=help or "data for the logit (and coprob) views: with a weight-file head a .npy of "
                     "hidden states (n, d), the head's inputs; with a model its inputs (text / "
                     ".jsonl for language models, .npy arrays), streamed through the model as "
                     "in the audit")
    add_stream_args(p, when="with --data: ")

@dataclass
class DataSpec:
    """The data a command's data views use: re-iterable hidden-state batches, their name, and
    how many hidden states the last complete pass gave (``n``)."""

    source: str
    stream: Callable[[], Iterable[NDArray[np.float64]]]
    d: int
    n: int = 0

    def batches(self) -> Iterable[NDArray[np.float64]]:
        """One pass over the hidden states (counted in ``n`` when it completes)."""
        seen = 0
        for h in self.stream():
            seen += int(h.shape[0])
            yield h
        self.n = seen

    def record(self) -> dict[str, object]:
        """How JSON names the data a result came from."""
        return {"source": self.source, "n_hidden_states": self.n}

    def moments(self, progress: bool, rows: NDArray[np.floating] | None = None) -> Moments:
        """The hidden states' streamed moments (one pass, a progress bar); with the head's
        ``rows`` (V, d) those of its centered logits when V < d (the smaller: a V x V
        accumulator instead of d x d; :func:`unembed.moments.moments_for`)."""
        from unembed._progress import progress_bars
        from unembed.moments import stream_moments

        with progress_bars(progress) as bar:
            task = bar.add(f"hidden states of {self.source}", None)
            return stream_moments(self.batches(), d=self.d, source=self.source,
                                  tick=lambda n: bar.advance(task, n), rows=rows)


def view_data(args: argparse.Namespace, model: LoadedModel) -> DataSpec | None:
    """The ``--data`` of the parsed options for this model (None without it); refused with the
    file's name when its arrays do not fit the model."""
    if args.data is None:
        return None
    from unembed._checks import UnembedError
    from unembed.data import ArrayInputs, open_data

    data = open_data(args.data, model, window=args.window, max_inputs=args.max_inputs)
    d = model.head.d
    if model.kind == "file" and isinstance(data, ArrayInputs) and data.array.shape[1:] != (d,):
        raise UnembedError(f"holds arrays of shape {data.array.shape}; this head "
                                    f"takes hidden states of shape (n, {d}).", path=args.data)
    bs = args.batch_size

    def batches() -> Iterable[NDArray[np.float64]]:
        for b in data.batches(bs):
            yield np.asarray(model.hidden_states(b), dtype=np.float64)

    return DataSpec(str(args.data), batches, d)


def needs_data(view: str) -> str:
    """The one-line error of a data view asked for without ``--data``."""
    return (f"The {view} view needs data: pass --data FILE (hidden states (n, d) as .npy for "
            f"a weight-file head, or the model's inputs).")
