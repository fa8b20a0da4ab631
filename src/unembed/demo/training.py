"""Seeded training of the demo's three models on the CPU.

Each ``train_*`` function returns the fitted model and a dict of held-out metrics measured in
the same call (accuracy for the digits models; perplexity against a unigram baseline for the
language model), so the report quotes this run's numbers.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from unembed.demo.data import DigitsSplit, WordTokenizer
from unembed.demo.models import DigitsCNN, TinyLM

__all__ = ["torch_threads", "train_digits_cnn", "train_digits_logreg", "train_lm"]


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch on ``n`` intra-op threads inside the block, then restore the setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_digits_cnn(split: DigitsSplit, *, epochs: int = 25, batch_size: int = 32,
                     seed: int = 0, progress: bool = False) -> tuple[DigitsCNN, dict[str, Any]]:
    """Adam on cross-entropy, ``epochs`` passes over the training digits in seeded order
    (``progress``: a bar of epochs on a terminal)."""
    from unembed._progress import progress_bars

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.from_numpy(split.x_train)
    y = torch.from_numpy(split.y_train)
    model.train()
    with progress_bars(progress) as bars:
        task = bars.add("training the digits CNN (epochs)", total=epochs)
        for _ in range(epochs):
            perm = torch.randperm(len(x), generator=gen)
            for s in range(0, len(x), batch_size):
                idx = perm[s:s + batch_size]
                loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            bars.advance(task)
    model.eval()
    with torch.inference_mode():
        pred = model(torch.from_numpy(split.x_test)).argmax(-1).numpy()
    acc = float((pred == split.y_test).mean())
    return model, {"heldout_accuracy": acc, "n_train": len(x), "n_heldout": len(split.x_test),
                   "epochs": epochs, "train_seconds": time.perf_counter() - t0}


def train_digits_logreg(split: DigitsSplit, *, seed: int = 0,
                        max_iter: int = 1000) -> tuple[Any, dict[str, Any]]:
    """A multinomial ``LogisticRegression`` (lbfgs, C=1) on the 64 pixel features."""
    from sklearn.linear_model import LogisticRegression

    t0 = time.perf_counter()
    est = LogisticRegression(max_iter=max_iter, random_state=seed)
    est.fit(split.x_train, split.y_train)
    acc = float((est.predict(split.x_test) == split.y_test).mean())
    return est, {"heldout_accuracy": acc, "n_train": len(split.x_train),
                 "n_heldout": len(split.x_test), "train_seconds": time.perf_counter() - t0}


def _windows(ids: NDArray[np.int64], length: int) -> NDArray[np.int64]:
    n = (len(ids) - 1) // length
    return ids[: n * length + 1]


def train_lm(train_text: str, heldout_text: str, *, vocab: int = 2000, context: int = 32,
             d: int = 64, layers: int = 2, steps: int = 600, batch_size: int = 32,
             seed: int = 0, progress: bool = False
             ) -> tuple[TinyLM, WordTokenizer, dict[str, Any]]:
    """Next-word prediction with AdamW on random windows of the training text
    (``progress``: a bar of steps on a terminal).

    Returns the model, its tokenizer and metrics: held-out perplexity of the model and of the
    unigram distribution of the training text (the baseline a model without context reaches).
    """
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    tok = WordTokenizer.fit(train_text, vocab)
    train_ids = torch.tensor(tok.encode(train_text), dtype=torch.int64)
    held_ids = np.asarray(tok.encode(heldout_text), dtype=np.int64)
    model = TinyLM(len(tok), d=d, layers=layers, context=context)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps,
                                                pct_start=0.1)
    model.train()
    offsets = torch.arange(context + 1)
    from unembed._progress import progress_bars

    with progress_bars(progress) as bars:
        task = bars.add("training the language model (steps)", total=steps)
        for _ in range(steps):
            starts = torch.randint(0, len(train_ids) - context - 1, (batch_size,),
                                   generator=gen)
            chunk = train_ids[starts[:, None] + offsets]
            logits = model(chunk[:, :-1])
            loss = nn.functional.cross_entropy(logits.reshape(-1, len(tok)),
                                               chunk[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bars.advance(task)
    model.eval()
    held = torch.from_numpy(_windows(held_ids, context))
    xs = held[:-1].reshape(-1, context)
    ys = held[1:].reshape(-1, context)
    with torch.inference_mode():
        nll = nn.functional.cross_entropy(model(xs).reshape(-1, len(tok)), ys.reshape(-1))
    counts = np.bincount(train_ids.numpy(), minlength=len(tok)).astype(np.float64) + 1.0
    unigram = counts / counts.sum()
    uni_nll = float(-np.log(unigram[ys.numpy().ravel()]).mean())
    metrics = {
        "heldout_perplexity": math.exp(float(nll)),
        "unigram_perplexity": math.exp(uni_nll),
        "vocab": len(tok), "context": context, "d": d, "layers": layers, "steps": steps,
        "train_tokens": len(train_ids), "heldout_tokens": int(ys.numel()),
        "train_seconds": time.perf_counter() - t0,
    }
    return model, tok, metrics
