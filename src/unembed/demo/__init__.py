"""``unembed demo``: train three small models on data that ships with Python and
scikit-learn, audit each, and write one report linking the three.

* a convolutional net on scikit-learn's digits (held-out accuracy reported);
* a causal transformer language model on the Python documentation topics (held-out perplexity
  against the unigram baseline reported);
* a multinomial logistic regression on the same digits.

No network; seeded (for a given thread count); torch on one thread by default (the models
are too small to gain from more, and extra threads spin against any other load). The audit
data are the held-out parts: the digits' test images and the held-out documentation topics,
written to a temporary directory as ``.npy`` and ``.txt`` files and read back through the
same readers ``unembed audit`` uses.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DemoResult", "run_demo"]


@dataclass
class DemoResult:
    """The three audits, training metrics and wall times of one demo run."""

    out: Path
    audits: dict[str, Any]
    metrics: dict[str, dict[str, Any]]
    seconds: dict[str, float] = field(default_factory=dict)


def run_demo(out: str | os.PathLike[str], *, quick: bool = False, seed: int = 0,
             threads: int = 1, force: bool = False, progress: bool = True,
             log: Any = None) -> DemoResult:
    """Train, audit and report; returns the results (the report is written to ``out``).

    ``quick`` trains for a fraction of the steps (seconds, for tests): the numbers are then
    those of barely trained models, and the report says so.
    """
    from unembed._io import check_target
    from unembed.audit import AuditInputs, audit
    from unembed.data import ArrayInputs, DataSource, TextWindows
    from unembed.demo.data import digits_split, doc_topics_text
    from unembed.demo.models import DemoLM, digits_model, logreg_model
    from unembed.demo.training import (
        torch_threads,
        train_digits_cnn,
        train_digits_logreg,
        train_lm,
    )
    from unembed.report import write_index

    say = log or (lambda s: None)
    outp = Path(out)
    check_target(outp, force=force)  # refuse before training, not after
    t_start = time.perf_counter()
    seconds: dict[str, float] = {}
    metrics: dict[str, dict[str, Any]] = {}
    audits: dict[str, Any] = {}
    with torch_threads(threads), tempfile.TemporaryDirectory() as tmpd:
        data_dir = Path(tmpd)
        split = digits_split(seed=seed)
        np.save(data_dir / "digits_heldout.npy", split.x_test)
        train_text, held_text = doc_topics_text()
        (data_dir / "heldout.txt").write_text(held_text, encoding="utf-8")
        targets = [str(int(y)) for y in split.y_test]

        say("training the digits CNN ...")
        cnn, m_cnn = train_digits_cnn(split, epochs=3 if quick else 25, seed=seed,
                                      progress=progress)
        say(f"  held-out accuracy {m_cnn['heldout_accuracy']:.4f} "
            f"({m_cnn['train_seconds']:.1f} s)")
        say("training the logistic regression ...")
        lr, m_lr = train_digits_logreg(split, seed=seed)
        say(f"  held-out accuracy {m_lr['heldout_accuracy']:.4f} "
            f"({m_lr['train_seconds']:.1f} s)")
        say("training the language model ...")
        lm, tok, m_lm = train_lm(train_text, held_text, seed=seed,
                                 steps=40 if quick else 2000,
                                 vocab=500 if quick else 2000, progress=progress)
        say(f"  held-out perplexity {m_lm['heldout_perplexity']:.1f} vs unigram "
            f"{m_lm['unigram_perplexity']:.1f} ({m_lm['train_seconds']:.1f} s)")
        seconds["training"] = time.perf_counter() - t_start
        metrics = {"cnn": m_cnn, "logreg": m_lr, "lm": m_lm}
        for m in metrics.values():
            m["quick"] = quick

        models: dict[str, tuple[Any, DataSource]] = {
            "cnn": (digits_model(cnn, split.labels, source="demo: digits CNN (torch)"),
                    ArrayInputs(data_dir / "digits_heldout.npy", targets=targets,
                                name="the held-out digits")),
            "logreg": (logreg_model(lr, split.labels,
                                    source="demo: digits LogisticRegression (sklearn)"),
                       ArrayInputs(data_dir / "digits_heldout.npy", targets=targets,
                                name="the held-out digits")),
            "lm": (DemoLM(lm, tok, source="demo: word-level transformer LM on the Python "
                                          "documentation topics"),
                   TextWindows([data_dir / "heldout.txt"], tok.encode,
                               window=m_lm["context"],
                               max_inputs=40 if quick else None)),
        }
        t_a = time.perf_counter()
        for name, (model, data) in models.items():
            say(f"auditing {name} ...")
            info = {k: v for k, v in metrics[name].items() if not isinstance(v, dict)}
            audits[name] = audit(model, data, top_n=40, top_k=5,
                                 batch_size=16 if name == "lm" else 128, progress=progress,
                                 info=info, inputs=AuditInputs(
                                     model=f"trained by unembed demo (seed {seed})",
                                     data=("the held-out documentation topics" if name == "lm"
                                           else "the held-out digits")))
        seconds["audits"] = time.perf_counter() - t_a
    seconds["total"] = time.perf_counter() - t_start
    sections = [
        {"name": "cnn", "heading": "Image classifier: a convolutional net on the digits",
         "text": "Two 3x3 convolutions, max-pool, a 64-unit ReLU layer, the head Linear(64, 10).",
         "facts": [("held-out accuracy", f"{m_cnn['heldout_accuracy']:.4f}"),
                   ("training images / held-out images",
                    f"{m_cnn['n_train']} / {m_cnn['n_heldout']}")]},
        {"name": "lm", "heading": "Language model: a causal transformer on the Python "
                                  "documentation topics",
         "text": f"Word-level, {m_lm['vocab']} tokens, {m_lm['layers']} pre-norm blocks of width "
                 f"{m_lm['d']}, final LayerNorm, untied Linear head with bias; audited on "
                 f"the held-out topics, every position a prediction.",
         "facts": [("held-out perplexity", f"{m_lm['heldout_perplexity']:.2f}"),
                   ("unigram baseline perplexity", f"{m_lm['unigram_perplexity']:.2f}"),
                   ("training tokens / held-out tokens",
                    f"{m_lm['train_tokens']} / {m_lm['heldout_tokens']}")]},
        {"name": "logreg", "heading": "Multinomial logistic regression on the digits",
         "text": "scikit-learn LogisticRegression (lbfgs); the head is coef_ (10 x 64) and "
                 "intercept_.",
         "facts": [("held-out accuracy", f"{m_lr['heldout_accuracy']:.4f}")]},
    ]
    title = "unembed demo" + (" (quick: barely trained models)" if quick else "")
    write_index(outp, title, sections, audits,
                {"metrics": metrics, "seconds": seconds, "seed": seed, "quick": quick},
                force=force)
    return DemoResult(outp, audits, metrics, seconds)
