"""unembed.load: one entry point, dispatching on what it is given."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from unembed import Head, UnembedError, load
from unembed.sources.base import LoadedModel


def test_dispatch_and_protocol(tiny_gpt2_dir, tiny_vision_dir, tmp_path):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    W = np.random.default_rng(0).normal(size=(4, 3))
    np.save(tmp_path / "W.npy", W)
    cases = {
        "hf_lm": load(tiny_gpt2_dir),
        "hf_vision": load(tiny_vision_dir("vit")),
        "torch": load(torch.nn.Linear(3, 4)),
        "sklearn": load(LogisticRegression(max_iter=500).fit(X, y)),
        "file": load(tmp_path / "W.npy"),
    }
    for kind, m in cases.items():
        assert m.kind == kind and isinstance(m, LoadedModel)
        assert isinstance(m.head, Head)
    f = cases["file"]
    np.testing.assert_allclose(f.model_logits(np.eye(3)), W.T)
    assert load(f.head).head is f.head


def test_load_errors_name_the_input(tmp_path):
    with pytest.raises(UnembedError, match="without config.json"):
        load(tmp_path)
    np.save(tmp_path / "W.npy", np.eye(3))
    with pytest.raises(UnembedError, match="--fold needs"):
        load(tmp_path / "W.npy", fold=True)
    with pytest.raises(UnembedError, match="cannot read a head from a dict"):
        load({"W": 1})
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps(
        {"model_type": "bert", "architectures": ["BertForMaskedLM"]}))
    with pytest.raises(UnembedError, match="BertForMaskedLM"):
        load(tmp_path / "m")
