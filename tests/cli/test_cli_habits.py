"""The command line's habits: help, typos, progress, temperatures, dtypes, labels that travel
with a head."""

from __future__ import annotations

import argparse
import csv
import json

import numpy as np

from unembed import Head, load
from unembed.cli import COMMANDS, EXAMPLES, build_parser, main


def _head(seed: int = 0, v: int = 6, d: int = 4, bias: bool = True) -> Head:
    rng = np.random.default_rng(seed)
    return Head(rng.normal(size=(v, d)), b=rng.normal(size=v) if bias else None,
                labels=[f"l{i}" for i in range(v)])


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_audit_of_users_hidden_states_with_pairs(tmp_path, capsys):
    """--model W.npy --bias b.npy --data H.npy: a weight-file head on the user's own hidden
    states; the pair table's measures match the audit's JSON."""
    head = _head(bias=True)
    np.save(tmp_path / "W.npy", head.W)
    np.save(tmp_path / "b.npy", head.b)
    H = np.random.default_rng(1).normal(size=(300, 4)) * 2
    np.save(tmp_path / "H.npy", H)
    rc = main(["audit", "--model", str(tmp_path / "W.npy"), "--bias", str(tmp_path / "b.npy"),
               "--data", str(tmp_path / "H.npy"), "--out", str(tmp_path / "a"),
               "--pairs", str(tmp_path / "pairs.csv"), "--no-co-top", "--json"])
    assert rc == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["pairs"] == str(tmp_path / "pairs.csv")
    with open(tmp_path / "pairs.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert {"label_a", "label_b", "view", "cosine", "corr_p", "mean_min"} <= set(rows[0])
    # independent: mean of min(p_a, p_b) over the data, from a softmax written here
    z = H @ head.W.T + head.b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    r = next(r for r in rows if r["view"] == "raw")
    a, b = int(r["label_a"]), int(r["label_b"])
    assert abs(float(r["mean_min"]) - np.minimum(p[:, a], p[:, b]).mean()) < 1e-12


def test_temperature_fixed_and_per_input(tmp_path, capsys):
    head = _head(bias=False)
    np.save(tmp_path / "W.npy", head.W)
    H = np.random.default_rng(2).normal(size=(50, 4))
    T = np.random.default_rng(3).uniform(0.5, 3.0, size=50)
    np.save(tmp_path / "H.npy", H)
    np.save(tmp_path / "T.npy", T)
    m = load(str(tmp_path / "W.npy"), temperature=2.0)
    z = H @ head.W.T
    ref = np.exp(z / 2.0 - (z / 2.0).max(1, keepdims=True))
    assert np.allclose(m.head.probs(H), ref / ref.sum(1, keepdims=True), atol=1e-14)
    rc = main(["counterexample", str(tmp_path / "W.npy"), "--pair", "0", "1", "--target",
               "-1", "--out", str(tmp_path / "W2.npy"), "--data", str(tmp_path / "H.npy"),
               "--temperature", str(tmp_path / "T.npy"), "--json"])
    assert rc == 0
    rec = json.loads(capsys.readouterr().out)
    # independent: softmax((W h) / T_x) per input before and after
    W2 = np.load(tmp_path / "W2.npy")
    zz1, zz2 = (H @ head.W.T) / T[:, None], (H @ W2.T) / T[:, None]
    p1 = np.exp(zz1 - zz1.max(1, keepdims=True))
    p2 = np.exp(zz2 - zz2.max(1, keepdims=True))
    p1 /= p1.sum(1, keepdims=True)
    p2 /= p2.sum(1, keepdims=True)
    assert np.abs(p1 - p2).max() < 1e-9 and rec["verification"]["equivalent"]
    np.save(tmp_path / "b.npy", np.ones(6))
    rc = main(["counterexample", str(tmp_path / "W.npy"), "--bias", str(tmp_path / "b.npy"),
               "--pair", "0", "1", "--target", "-1", "--out", str(tmp_path / "W3.npy"),
               "--data", str(tmp_path / "H.npy"), "--temperature", str(tmp_path / "T.npy")])
    assert rc == 2 and "with a bias is not one head" in capsys.readouterr().err


def test_dtype_option_and_labels_travel(tmp_path, capsys):
    head = _head(bias=False, v=5, d=8)
    np.save(tmp_path / "W16.npy", head.W.astype(np.float16))
    (tmp_path / "labels.txt").write_text("\n".join(["cat", "dog", "car", "sun", "sea"]) + "\n")
    outs = {}
    for dt in (None, "float32"):
        out = tmp_path / f"out_{dt}.npy"
        argv = ["counterexample", str(tmp_path / "W16.npy"), "--labels",
                str(tmp_path / "labels.txt"), "--pair", "cat", "dog", "--target", "0.3",
                "--out", str(out), "--json"] + (["--dtype", dt] if dt else [])
        assert main(argv) == 0
        capsys.readouterr()
        outs[dt] = np.load(out)
        assert json.loads((tmp_path / f"out_{dt}.labels.json").read_text())[:2] == ["cat",
                                                                                   "dog"]
    assert outs[None].dtype == np.float16 and outs["float32"].dtype == np.float32
    err = {k: abs(_cos(v[0].astype(float), v[1].astype(float)) - 0.3) for k, v in outs.items()}
    assert err["float32"] < 1e-6 < err[None]
    # the labels beside the written head are picked up without --labels
    assert main(["cosine", str(tmp_path / "out_float32.npy"), "cat", "dog", "--json"]) == 0
    assert "cat" in capsys.readouterr().out


def test_labels_from_a_tokenizer_directory(tmp_path):
    from conftest import make_tokenizer

    tok = make_tokenizer()
    tok.save_pretrained(tmp_path / "tok")
    W = np.random.default_rng(0).normal(size=(len(tok) + 2, 4))
    np.save(tmp_path / "W.npy", W)
    m = load(str(tmp_path / "W.npy"), labels=str(tmp_path / "tok"))
    vocab = tok.get_vocab()
    word = next(t for t in sorted(vocab) if t.startswith("Ġ") and len(t) > 2)
    assert m.head.labels[vocab[word]] == " " + word[1:]
    assert m.head.labels[-1] == f"[#{len(tok) + 1}]"


def test_bare_command_prints_help(capsys):
    assert main([]) == 0
    assert "usage: unembed" in capsys.readouterr().out


def test_mistyped_command_gets_did_you_mean(capsys):
    assert main(["inspcet", "W.npy"]) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'inspect'?" in err and err.count("\n") == 1


def test_every_option_has_help_every_command_an_example_and_no_progress():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(COMMANDS) == set(EXAMPLES)
    for name, p in sub.choices.items():
        assert "--no-progress" in p._option_string_actions, name
        assert p.epilog and p.epilog.startswith("example:") and f"unembed {name}" in p.epilog
        for a in p._actions:
            if not isinstance(a, argparse._HelpAction):
                assert a.help, (name, a.option_strings or a.dest)


def test_text_progress_has_no_false_total(tmp_path):
    from unembed.behaviour import TextWindows

    (tmp_path / "t.txt").write_text("a b c d e f g h\n" * 10)
    tw = TextWindows([tmp_path / "t.txt"], lambda s: [1] * len(s.split()), window=4,
                     max_inputs=200)
    assert tw.size_hint() is None  # 20 windows, not the cap of 200
    assert sum(len(b) for b in tw.batches(8)) == 20


