"""Typed seams: what one module decides on is a typed field of the Head or a typed
model protocol, not a meta key or a getattr probe; load(component=) with the deprecated
head_name= spelling."""

from __future__ import annotations

import numpy as np
import pytest

from unembed import Head, load
from unembed._checks import UnembedError
from unembed.cli import main
from unembed.data import DecodingTextModel, OpensOwnText, TextModel, TextWindows, open_data


def _W(v: int = 5, d: int = 3) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((v, d))


def test_labels_from_is_a_field(tmp_path):
    assert Head(_W()).labels_from == "row numbers"
    assert Head(_W(), labels=list("abcde")).labels_from == "the caller"
    np.save(tmp_path / "W.npy", _W())
    (tmp_path / "names.txt").write_text("a\nb\nc\nd\ne\n")
    assert load(str(tmp_path / "W.npy")).head.labels_from == "row numbers"
    m = load(str(tmp_path / "W.npy"), labels=str(tmp_path / "names.txt"))
    assert m.head.labels == tuple("abcde") and m.head.labels_from == str(tmp_path / "names.txt")
    assert "labels_from" not in m.head.meta


def test_counterexample_writes_a_labels_sidecar_only_for_named_labels(tmp_path, capsys):
    """Written next to the output only when the labels are not the row numbers (read back by
    load: the sidecar's names, in row order)."""
    np.save(tmp_path / "W.npy", _W())
    (tmp_path / "names.txt").write_text("a\nb\nc\nd\ne\n")
    before = {p.name for p in tmp_path.iterdir()}
    assert main(["counterexample", str(tmp_path / "W.npy"), "--pair", "0", "1", "--target",
                 "-1", "--out", str(tmp_path / "bare.npy")]) == 0
    assert {p.name for p in tmp_path.iterdir()} - before == {"bare.npy"}
    assert main(["counterexample", str(tmp_path / "W.npy"), "--labels",
                 str(tmp_path / "names.txt"), "--pair", "a", "b", "--target", "-1", "--out",
                 str(tmp_path / "named.npy")]) == 0
    capsys.readouterr()
    assert load(str(tmp_path / "named.npy")).head.labels == tuple("abcde")


def test_a_text_file_needs_a_text_model(tmp_path, capsys, tiny_gpt2_dir):
    np.save(tmp_path / "W.npy", _W())
    (tmp_path / "x.txt").write_text("the cat sat on the mat\n")
    file_model = load(str(tmp_path / "W.npy"))
    assert not isinstance(file_model, TextModel) and not isinstance(file_model, OpensOwnText)
    with pytest.raises(UnembedError, match=r"x\.txt: a text file needs a language model"):
        open_data(tmp_path / "x.txt", file_model)
    rc = main(["audit", str(tmp_path / "W.npy"), "--data", str(tmp_path / "x.txt"), "--out",
               str(tmp_path / "a.json")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "x.txt: a text file needs" in err
    assert not (tmp_path / "a.json").exists()
    # a language model with a tokenizer reads it; its windows are described in its own text
    lm = load(str(tiny_gpt2_dir))
    assert isinstance(lm, TextModel) and isinstance(lm, DecodingTextModel)
    src = open_data(tmp_path / "x.txt", lm, window=4)
    assert isinstance(src, TextWindows)
    ids = lm.tokenize("the cat sat on the mat\n")[:4]
    text = src.describe([1], lm)[1]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_gpt2_dir))  # independent decode
    assert repr(tok.decode(ids[:2])) in text and repr(tok.decode(ids[2:3])) in text


def test_component_and_its_deprecated_spelling():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 5))
    m = load(net, component="2")
    with pytest.warns(DeprecationWarning, match="'head_name' argument of load is deprecated"):
        old = load(net, head_name="2")
    assert old.head.labels == m.head.labels
    np.testing.assert_array_equal(old.head.W, net[2].weight.detach().double().numpy())
    with pytest.warns(DeprecationWarning), pytest.raises(UnembedError, match="once"):
        load(net, component="2", head_name="2")
