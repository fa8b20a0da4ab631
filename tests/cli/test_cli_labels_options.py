"""``--labels`` takes a labels file or a tokenizer directory for every kind of model and every
command that has the option; a mistyped option gets "did you mean" (one line, exit 2)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from unembed import load
from unembed.cli import build_parser, main


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    from conftest import make_tokenizer

    path = tmp_path_factory.mktemp("tok") / "tokenizer"
    make_tokenizer().save_pretrained(path)
    return path


def _readable(tok_dir, n):
    """Row i is token i, shown with its leading-space marker as a space (independent of
    unembed: the tokenizer's own vocabulary)."""
    vocab = json.loads((tok_dir / "tokenizer.json").read_text())["model"]["vocab"]
    by_id = {i: t for t, i in vocab.items()}
    return [by_id[i].replace("Ġ", " ") for i in range(n)]


@pytest.fixture(scope="module")
def pkl(tmp_path_factory):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = np.repeat([0, 1, 2], 20)
    X[y == 1] += 2.0
    X[y == 2] -= 2.0
    path = tmp_path_factory.mktemp("sk") / "model.pkl"
    path.write_bytes(pickle.dumps(LogisticRegression(max_iter=500).fit(X, y)))
    return path


def test_a_tokenizer_directory_names_the_rows_of_an_estimator(pkl, tok_dir):
    m = load(str(pkl), trust_pickle=True, labels=str(tok_dir))
    want = _readable(tok_dir, 3)
    assert list(m.head.labels) == want and m.head.labels_from == str(tok_dir)


def test_a_labels_file_names_the_rows_of_an_estimator(pkl, tmp_path):
    f = tmp_path / "labels.txt"
    f.write_text("setosa\nversicolor\nvirginica\n", encoding="utf-8")
    m = load(str(pkl), trust_pickle=True, labels=str(f))
    assert m.head.labels == ("setosa", "versicolor", "virginica")


def test_labels_replace_a_model_directory_s_own(tiny_gpt2_dir, tmp_path):
    own = load(tiny_gpt2_dir)
    names = [f"tok{i}" for i in range(own.head.n_labels)]
    f = tmp_path / "names.json"
    f.write_text(json.dumps(names), encoding="utf-8")
    m = load(tiny_gpt2_dir, labels=str(f))
    assert list(m.head.labels) == names
    assert np.array_equal(m.head.W, own.head.W)  # only the names changed
    assert list(load(tiny_gpt2_dir, labels=names).head.labels) == names  # a list too


def test_repeated_tokens_with_unique_labels(tmp_path, tok_dir):
    f = tmp_path / "dup.txt"
    f.write_text("a\na\nb\n", encoding="utf-8")
    np.save(tmp_path / "W.npy", np.random.default_rng(1).normal(size=(3, 2)))
    m = load(str(tmp_path / "W.npy"), labels=str(f), unique_labels=True)
    assert m.head.labels == ("a", "a#2", "b")


@pytest.mark.parametrize("command", ["inspect", "cosine", "neighbours", "argmaxable",
                                     "feasible", "counterexample", "audit", "verify"])
def test_every_command_with_labels_takes_a_tokenizer_directory(command, pkl, tok_dir,
                                                               tmp_path, capsys):
    sub = build_parser()._subparsers._group_actions[0].choices[command]  # type: ignore
    assert "FILE|DIR" in sub.format_help()
    if command not in ("inspect", "cosine", "neighbours"):
        return  # the option is the same one (add_head_args); three commands run end to end
    a, b, _ = _readable(tok_dir, 3)
    argv = {"inspect": [command, str(pkl)],
            "cosine": [command, str(pkl), a, b],
            "neighbours": [command, str(pkl), a, "-k", "1"]}[command]
    assert main([*argv, "--trust-pickle", "--labels", str(tok_dir), "--json"]) == 0
    out = capsys.readouterr().out
    assert a in out


@pytest.mark.parametrize(("argv", "unknown", "suggestion"), [
    (["cosine", "W.npy", "a", "b", "--veiw", "centered"], "--veiw", "--view"),
    (["cosine", "W.npy", "a", "b", "--lables=l.txt"], "--lables", "--labels"),
    (["inspect", "W.npy", "--max-lables", "5"], "--max-lables", "--max-labels"),
    (["inspect", "W.npy", "--zzzz"], "--zzzz", None),
])
def test_mistyped_option_gets_did_you_mean(argv, unknown, suggestion, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"unknown option {unknown} for 'unembed {argv[0]}'" in err
    if suggestion is None:
        assert "Did you mean" not in err
    else:
        assert f"Did you mean {suggestion}" in err


def test_mistyped_option_with_json(capsys):
    assert main(["cosine", "W.npy", "a", "b", "--veiw", "raw", "--json"]) == 2
    rec = json.loads(capsys.readouterr().out)
    assert rec["exit_code"] == 2 and "Did you mean --view?" in rec["error"]


def test_every_help_example_parses():
    """Each example line in the commands' help is a command line the parser accepts."""
    import shlex

    from unembed.cli import EXAMPLES, parse

    parser = build_parser()
    for name, text in EXAMPLES.items():
        for line in text.splitlines():
            argv = shlex.split(line.strip())
            assert argv[:2] == ["unembed", name], line
            args = parse(parser, argv[1:])
            assert args.command == name
