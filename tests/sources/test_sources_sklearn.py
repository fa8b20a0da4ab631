"""scikit-learn linear classifiers as heads: multinomial, binary, one-vs-rest, multi-output."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.multiclass import OneVsRestClassifier
from sklearn.multioutput import MultiOutputClassifier

from unembed import UnembedError, load, translate
from unembed.sources.sklearn import SklearnModel


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return (X - X.mean(0)) / X.std(0), y


def _probs(model, X):
    return model.head.probs(model.hidden_states(X))


def test_multinomial_logistic_regression_is_a_softmax_head(iris):
    X, y = iris
    est = LogisticRegression(max_iter=500).fit(X, y)
    m = load(est)
    assert m.kind == "sklearn" and m.head.link == "softmax"
    assert m.head.meta["structure"] == "multinomial" and m.head.labels == ("0", "1", "2")
    np.testing.assert_allclose(_probs(m, X), est.predict_proba(X), atol=1e-12)
    np.testing.assert_allclose(m.head.logits(m.hidden_states(X)), m.model_logits(X), atol=1e-12)


def test_binary_model_becomes_two_centered_rows(iris):
    X, y = iris
    est = LogisticRegression().fit(X, (y == 2).astype(int))
    m = load(est, labels=["other", "virginica"])
    assert m.head.W.shape == (2, 4) and m.head.meta["structure"] == "binary"
    np.testing.assert_array_equal(m.head.W[0], -m.head.W[1])
    assert "-w/2" in m.head.meta["note"]
    np.testing.assert_allclose(_probs(m, X), est.predict_proba(X), atol=1e-12)


def test_one_vs_rest_and_sgd_are_sigmoid_heads(iris):
    X, y = iris
    for est in (OneVsRestClassifier(LogisticRegression()).fit(X, y),
                SGDClassifier(loss="log_loss", random_state=0).fit(X, y)):
        m = load(est)
        assert m.head.link == "sigmoid" and m.head.meta["structure"] == "ovr"
        z = m.model_logits(X)
        np.testing.assert_allclose(m.head.logits(m.hidden_states(X)), z, atol=1e-10)
        # predict_proba normalises the per-class sigmoids
        p = 1 / (1 + np.exp(-z))
        np.testing.assert_allclose(p / p.sum(1, keepdims=True), est.predict_proba(X),
                                   atol=1e-10)
        with pytest.raises(UnembedError, match="sigmoid"):
            translate(m.head, np.ones(4))


def test_multi_output_is_a_sigmoid_head(iris):
    X, y = iris
    Y = np.stack([y == 0, y == 2, X[:, 0] > 0], axis=1).astype(int)
    est = MultiOutputClassifier(LogisticRegression()).fit(X, Y)
    m = load(est)
    assert m.head.link == "sigmoid" and m.head.n_labels == 3
    on = np.stack([p[:, 1] for p in est.predict_proba(X)], axis=1)
    np.testing.assert_allclose(_probs(m, X), on, atol=1e-12)


def test_pickles_need_trust(iris, tmp_path):
    X, y = iris
    est = LogisticRegression(max_iter=500).fit(X, y)
    f = tmp_path / "model.pkl"
    f.write_bytes(pickle.dumps(est))
    with pytest.raises(UnembedError, match="trust_pickle"):
        load(f)
    m = load(f, trust_pickle=True)
    assert isinstance(m, SklearnModel) and m.head.meta["source"] == str(f)


def test_not_a_linear_classifier_is_refused(iris):
    from sklearn.tree import DecisionTreeClassifier

    X, y = iris
    with pytest.raises(UnembedError, match="DecisionTreeClassifier"):
        load(DecisionTreeClassifier().fit(X, y))


def test_cli_inspect_pickled_estimator_needs_trust_pickle(iris, tmp_path):
    import subprocess
    import sys

    X, y = iris
    f = tmp_path / "model.pkl"
    f.write_bytes(pickle.dumps(LogisticRegression(max_iter=500).fit(X, y)))
    cmd = [sys.executable, "-m", "unembed", "inspect", "--model", str(f), "--json"]
    refused = subprocess.run(cmd, capture_output=True, text=True)
    assert refused.returncode == 2 and "--trust-pickle" in refused.stderr
    ok = subprocess.run([*cmd, "--trust-pickle"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    rec = json.loads(ok.stdout)
    assert rec["head"].startswith("Head(V=3, d=4") and rec["source"] == str(f)
