"""A scikit-learn user needs no torch: an audit of a trained logistic regression runs in a
process where ``import torch`` fails, and nothing tries to import it."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np

BLOCKER = '''
import sys, os

class _NoTorch:
    """Makes every import of torch (or ray) fail, and records the attempt."""

    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in ("torch", "ray"):
            with open(os.environ["UNEMBED_TEST_IMPORT_LOG"], "a") as fh:
                fh.write(name + "\\n")
            raise ImportError(f"{name} is blocked in this test")
        return None

sys.meta_path.insert(0, _NoTorch())
'''


def test_sklearn_audit_runs_without_torch(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    est = LogisticRegression(max_iter=300).fit(X[:1200], y[:1200])
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(est))
    np.save(tmp_path / "held.npy", X[1200:1500])
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    log = tmp_path / "imports.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), *sys.path])
    env["UNEMBED_TEST_IMPORT_LOG"] = str(log)
    out = tmp_path / "rep"
    r = subprocess.run(
        [sys.executable, "-m", "unembed", "audit", "--model", str(tmp_path / "model.pkl"),
         "--trust-pickle", "--data", str(tmp_path / "held.npy"), "--out", str(out), "--json",
         "--likely", "0.05"],
        capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    assert not log.exists(), log.read_text()
    d = json.loads((out / "audit.json").read_text())
    assert d["data"]["n_predictions"] == 300
    assert len(d["labels"]) == 10
    # the blocker is live: the same interpreter cannot import torch
    r2 = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, text=True,
                        env=env, timeout=120)
    assert r2.returncode != 0 and "blocked in this test" in r2.stderr
    # the tally's mean probabilities are the estimator's own predict_proba means
    p = est.predict_proba(X[1200:1500])
    order = [list(map(str, est.classes_)).index(lab) for lab in d["labels"]]
    np.testing.assert_allclose(d["label_mean_probability"], p.mean(axis=0)[order], rtol=1e-10)
