"""scikit-learn linear classifiers: ``coef_`` and ``intercept_`` as an exact head.

=================================  ========  ===================================================
estimator                          link      head
=================================  ========  ===================================================
multinomial ``LogisticRegression``  softmax   W = coef_ (K, d), b = intercept_
binary model (2 classes)           softmax   two rows: -w/2 and +w/2, biases -b/2 and +b/2
one-vs-rest (``SGDClassifier``,    sigmoid   one row per class: that class's own binary
``LinearSVC``, ``OneVsRest...``)             logit (``predict_proba`` may then normalise)
``MultiOutputClassifier``          sigmoid   one row per output (each a binary linear model)
=================================  ========  ===================================================

A binary model stores one row w: p(classes_[1] | x) = sigmoid(w.x + b). As a softmax over two
labels that is any pair of rows whose difference is w; unembed picks the centered pair
(-w/2, +w/2), so the two labels' raw cosine is -1 by construction (every translation of the
pair is the same model). Hidden states are the features themselves (n, d), so the features
cannot be reparametrised. Pickled estimators are loaded only with ``trust_pickle=True``.
"""

from __future__ import annotations

import copy
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed.errors import Setting
from unembed.head import Head
from unembed.sources._repr import model_html, model_repr
from unembed.sources.base import HeadModel

__all__ = ["SklearnModel", "is_sklearn_estimator", "load_sklearn", "read_pickle"]

_BINARY_NOTE = ("binary model: the single row w became two rows -w/2 and +w/2 (biases -b/2 "
                "and +b/2); softmax over them equals sigmoid(w.x + b), and their cosine is -1 "
                "by this choice alone")


def is_sklearn_estimator(obj: Any) -> bool:
    return type(obj).__module__.startswith("sklearn.") or hasattr(obj, "_get_param_names")


def read_pickle(path: str | os.PathLike[str], *, trust_pickle: bool) -> Any:
    """Unpickle an estimator, only when the caller says they trust the file."""
    p = Path(path)
    if not trust_pickle:
        raise UnembedError(("loading a pickle runs code from the file; pass ",
                            Setting("trust_pickle=True", "--trust-pickle"),
                            " only if you trust where it came from."), path=p)
    if not p.is_file():
        raise UnembedError("no such file.", path=p)
    try:
        if p.suffix == ".joblib":
            import joblib

            return joblib.load(p)
        with open(p, "rb") as fh:
            return pickle.load(fh)  # the caller trusts the file
    except Exception as e:
        raise UnembedError(f"not a readable pickle ({type(e).__name__}: {e}).", path=p) from None


def _binary_rows(est: Any, name: str) -> tuple[NDArray[np.float64], float]:
    coef = np.asarray(getattr(est, "coef_", None), dtype=np.float64)
    if coef.ndim != 2 or coef.shape[0] != 1:
        raise UnembedError(f"{name}: expected a binary linear model with coef_ of shape (1, d). "
                           f"Got "
                           f"{type(est).__name__} with coef_ shape {coef.shape}.")
    return coef[0], float(np.ravel(getattr(est, "intercept_", [0.0]))[0])


class SklearnModel(HeadModel):
    """A fitted scikit-learn linear classifier as a head over its input features.

    Attributes
    ----------
    head : Head
        (n_labels, d), float64; ``meta["structure"]`` is "multinomial", "binary", "ovr" or
        "multioutput".
    kind : str
        "sklearn".
    estimator : the fitted estimator (not copied).
    """

    kind = "sklearn"
    __repr__ = model_repr
    _repr_html_ = model_html

    def __init__(self, estimator: Any, *, labels: Any = None, source: str = "estimator",
                 strict: bool = True) -> None:
        self.estimator = estimator
        self.source = source
        self._strict = strict
        W, b, link, structure, default_labels, note = self._read(estimator)
        self.structure = structure
        self.dtype = "float64"
        self.raw_b = b
        meta = {"family": type(estimator).__name__,
                "norm": None, "tied": False, "folded": False, "structure": structure}
        if note:
            meta["note"] = note
        self.head = Head(W=W, b=b, labels=tuple(labels) if labels is not None else
                         default_labels, link=link, reparam=False, dtype=self.dtype,
                         meta=meta, source=source, strict=strict,
                         labels_from="the caller" if labels is not None else "classes_",
                         reparam_reason="the hidden state is the input features themselves")

    def _read(self, est: Any) -> tuple[NDArray[np.float64], NDArray[np.float64], Any, str,
                                       tuple[str, ...], str]:
        name = type(est).__name__
        if hasattr(est, "estimators_") and name == "MultiOutputClassifier":
            rows = [_binary_rows(e, f"{name} output {k}") for k, e in enumerate(est.estimators_)]
            W = np.stack([r for r, _ in rows])
            b = np.array([c for _, c in rows])
            labels = tuple(f"output {k}" for k in range(len(rows)))
            return W, b, "sigmoid", "multioutput", labels, (
                "each row is one output's binary logit (on = its classes_[1])")
        if hasattr(est, "estimators_") and name == "OneVsRestClassifier":
            rows = [_binary_rows(e, f"{name} class {k}") for k, e in enumerate(est.estimators_)]
            W = np.stack([r for r, _ in rows])
            b = np.array([c for _, c in rows])
            labels = tuple(str(c) for c in est.classes_)
            if len(rows) == 1:
                raise UnembedError(f"{name}: a one-vs-rest model over two classes has a single "
                                   f"row; "
                                   f"fit the binary estimator directly.")
            return W, b, "sigmoid", "ovr", labels, "one-vs-rest: each row is one class's own " \
                "binary logit (predict_proba normalises their sigmoids)"
        if not hasattr(est, "coef_") or not hasattr(est, "classes_"):
            raise UnembedError(f"cannot read a head from a {name}: expected a fitted linear "
                               f"classifier "
                               f"(coef_, intercept_, classes_), a OneVsRestClassifier or a "
                               f"MultiOutputClassifier of them.")
        coef = np.asarray(est.coef_, dtype=np.float64)
        intercept = np.broadcast_to(np.asarray(getattr(est, "intercept_", 0.0), np.float64),
                                    (coef.shape[0],)).copy()
        classes = tuple(str(c) for c in est.classes_)
        if coef.shape[0] == 1 and len(classes) == 2:
            w, c = coef[0], intercept[0]
            return (np.stack([-w / 2, w / 2]), np.array([-c / 2, c / 2]), "softmax", "binary",
                    classes, _BINARY_NOTE)
        if coef.shape[0] != len(classes):
            raise UnembedError(f"{name}: coef_ has {coef.shape[0]} rows for {len(classes)} "
                               f"classes.")
        multinomial = name in ("LogisticRegression", "LogisticRegressionCV") and getattr(
            est, "multi_class", "multinomial") != "ovr" and getattr(est, "solver", "") != \
            "liblinear"
        if multinomial:
            return coef, intercept, "softmax", "multinomial", classes, ""
        return coef, intercept, "sigmoid", "ovr", classes, (
            "one-vs-rest: each row is one class's own binary logit")

    # ------------------------------------------------------------------ LoadedModel
    def hidden_states(self, inputs: Any) -> NDArray[np.float64]:
        """The features themselves, (n, d) float64."""
        X = np.asarray(inputs, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.head.d:
            raise UnembedError(f"must have shape (n, {self.head.d}) (features). "
                               f"Got shape {X.shape} instead.", argument="inputs")
        return X

    def model_logits(self, inputs: Any) -> NDArray[np.float64]:
        """The estimator's own decision function as logits (n, V), float64 (for a binary
        model: -f/2 and +f/2)."""
        X = self.hidden_states(inputs)
        est = self.estimator
        if self.structure == "multioutput":
            cols = [np.asarray(e.decision_function(X), np.float64) for e in est.estimators_]
            return np.stack(cols, axis=1)
        f = np.asarray(est.decision_function(X), dtype=np.float64)
        if self.structure == "binary":
            return np.stack([-f / 2, f / 2], axis=1)
        return f

    def random_inputs(self, n: int, length: int = 0, *, seed: int = 0) -> NDArray[np.float64]:
        """n standard-normal feature vectors (n, d) (``length`` is ignored)."""
        return np.random.default_rng(seed).standard_normal((n, self.head.d))

    # ------------------------------------------------------------------ for exports
    def with_head(self, head: Head) -> Any:
        """A copy of the estimator whose head is ``head`` (same structure)."""
        est = copy.deepcopy(self.estimator)
        W, b = np.array(head.W), np.array(head.bias)
        if self.structure == "binary":
            est.coef_ = (W[1] - W[0])[None, :].astype(self.estimator.coef_.dtype)
            est.intercept_ = np.atleast_1d(b[1] - b[0]).astype(np.float64)
        elif self.structure in ("ovr", "multioutput") and hasattr(est, "estimators_"):
            for k, e in enumerate(est.estimators_):
                e.coef_ = W[k][None, :].copy()
                e.intercept_ = np.atleast_1d(b[k]).copy()
        else:
            est.coef_ = W.copy()
            est.intercept_ = b.copy()
        return est

    def with_estimator(self, est: Any) -> SklearnModel:
        return SklearnModel(est, labels=self.head.labels, source=self.source,
                            strict=self._strict)


def load_sklearn(obj: Any, *, labels: Any = None, trust_pickle: bool = False,
                 strict: bool = True) -> SklearnModel:
    """A :class:`SklearnModel` from a fitted estimator or a pickle file (``trust_pickle``)."""
    if isinstance(obj, (str, os.PathLike)):
        est = read_pickle(obj, trust_pickle=trust_pickle)
        return SklearnModel(est, labels=labels, source=str(obj), strict=strict)
    return SklearnModel(obj, labels=labels, strict=strict)
