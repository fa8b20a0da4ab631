"""A seeded mutation fuzzer over everything unembed reads: weight files, sharded
checkpoints, HuggingFace directories, labels, audit data, and the command line. Every case
ends in a valid result or an UnembedError, never another exception; through ``main(argv)``,
in a documented exit status and never a traceback. A few hundred cases, seconds in all."""

from __future__ import annotations

import json
import os
import random
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from unembed import load
from unembed._checks import UnembedError
from unembed.sources.files import read_labels

_VALUES: list[Any] = [None, "", "x", [], [1, 2], {}, {"a": 1}, 0, -1, 1, 2**40, 1.5, -0.0,
                      1e308, True, False, "float8", "../../etc/passwd", "/dev/zero",
                      "a.safetensors", "model.safetensors", "\u00ff", "0"]


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """One of: flip bytes, truncate, append junk, overwrite a slice, duplicate a slice."""
    b = bytearray(data)
    op = rng.randrange(5)
    if op == 0 and b:
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif op == 1:
        del b[rng.randrange(len(b) + 1):]
    elif op == 2:
        b += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif op == 3 and b:
        i = rng.randrange(len(b))
        b[i:i + 8] = bytes(rng.randrange(256) for _ in range(8))
    elif b:
        i, j = sorted(rng.randrange(len(b)) for _ in range(2))
        b[j:j] = b[i:j][:256]
    return bytes(b)


def mutate_json(obj: Any, rng: random.Random) -> Any:
    """Replace, delete or add one value somewhere in a JSON document."""
    if not isinstance(obj, (dict, list)) or not obj or rng.random() < 0.15:
        return rng.choice(_VALUES)
    if isinstance(obj, dict):
        out = dict(obj)
        k = rng.choice(list(out))
        r = rng.random()
        if r < 0.15:
            del out[k]
        elif r < 0.25:
            out[rng.choice(["auto_map", "torch_dtype", "logit_scale", "weight_map", k + "_"])] = \
                rng.choice(_VALUES)
        else:
            out[k] = mutate_json(out[k], rng)
        return out
    out_l = list(obj)
    i = rng.randrange(len(out_l))
    out_l[i] = mutate_json(out_l[i], rng)
    return out_l


def _ends_well(fn: Callable[[], Any]) -> str:
    try:
        fn()
    except UnembedError as e:
        msg = str(e)
        assert "\n" not in msg and "weights_only=False" not in msg, msg
        return "refused"
    return "ok"


def _link_dir(src: Path, dst: Path, skip: str) -> None:
    dst.mkdir()
    for f in src.iterdir():
        if f.name != skip and f.is_file():
            os.link(f, dst / f.name)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from safetensors.torch import save_file

    d = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    W = rng.standard_normal((6, 3)).astype(np.float32)
    np.save(d / "w.npy", W)
    save_file({"w": torch.from_numpy(W), "b": torch.zeros(6)}, d / "w.safetensors")
    torch.save({"w": torch.from_numpy(W)}, d / "w.pt")
    (d / "labels.txt").write_text("\n".join(f"l{i}" for i in range(6)) + "\n")
    (d / "labels.json").write_text(json.dumps({"id2label": {str(i): f"l{i}" for i in range(6)}}))
    (d / "data.txt").write_text("the cat sat on the mat\n" * 5)
    (d / "data.jsonl").write_text("\n".join(json.dumps({"text": "a dog ran"}) for _ in range(4)))
    np.save(d / "data.npy", rng.standard_normal((5, 3)))
    return d


def test_fuzz_weight_files_labels_and_data(corpus: Path, tmp_path: Path) -> None:
    from unembed.behaviour import ArrayInputs

    rng = random.Random(1234)
    outcomes: dict[str, int] = {}
    for case in range(240):
        kind = rng.choice(["w.npy", "w.safetensors", "w.pt", "labels.txt", "labels.json",
                           "data.npy"])
        src = corpus / kind
        if kind == "labels.json" and rng.random() < 0.5:
            data = json.dumps(mutate_json(json.loads(src.read_text()), rng)).encode()
        else:
            data = mutate_bytes(src.read_bytes(), rng)
        f = tmp_path / f"{case}{src.suffix}"
        f.write_bytes(data)
        if kind.startswith("w."):
            res = _ends_well(lambda f=f: load(f).head)
        elif kind.startswith("labels"):
            res = _ends_well(lambda f=f: read_labels(f))
        else:
            res = _ends_well(lambda f=f: list(ArrayInputs(f).batches(2)))
        outcomes[res] = outcomes.get(res, 0) + 1
    assert outcomes.get("refused", 0) > 50 and outcomes.get("ok", 0) > 10, outcomes


def test_fuzz_text_data(corpus: Path, tmp_path: Path, tiny_gpt2_dir: Path) -> None:
    from unembed.behaviour import open_data

    m = load(tiny_gpt2_dir)
    rng = random.Random(99)
    for case in range(40):
        src = corpus / rng.choice(["data.txt", "data.jsonl"])
        f = tmp_path / f"{case}{src.suffix}"
        f.write_bytes(mutate_bytes(src.read_bytes(), rng))
        _ends_well(lambda f=f: list(open_data(f, m, window=4).batches(2)))


def test_fuzz_hf_directories_and_shards(tiny_llama_dir: Path, tmp_path: Path) -> None:
    """config.json and shard index mutations; every accepted head equals the checkpoint's."""
    import torch
    from safetensors.torch import load_file, save_file

    state = load_file(tiny_llama_dir / "model.safetensors")
    names = sorted(state)
    base = tmp_path / "base"
    _link_dir(tiny_llama_dir, base, "model.safetensors")
    half = len(names) // 2
    save_file({k: state[k] for k in names[:half]}, base / "a.safetensors")
    save_file({k: state[k] for k in names[half:]}, base / "b.safetensors")
    index = {"metadata": {}, "weight_map": {k: ("a" if i < half else "b") + ".safetensors"
                                            for i, k in enumerate(names)}}
    (base / "model.safetensors.index.json").write_text(json.dumps(index))
    config = json.loads((base / "config.json").read_text())
    head = state["lm_head.weight"].to(torch.float64).numpy()
    rng = random.Random(7)
    outcomes: dict[str, int] = {}
    for case in range(60):
        d = tmp_path / f"d{case}"
        which = rng.choice(["config.json", "model.safetensors.index.json"])
        _link_dir(base, d, which)
        doc = config if which == "config.json" else index
        if rng.random() < 0.7:
            (d / which).write_text(json.dumps(mutate_json(doc, rng)))
        else:
            (d / which).write_bytes(mutate_bytes(json.dumps(doc).encode(), rng))

        def read(d: Path = d) -> None:
            m = load(d)
            if m.head.W.shape == head.shape:
                np.testing.assert_array_equal(m.head.W, head)

        res = _ends_well(read)
        outcomes[res] = outcomes.get(res, 0) + 1
    assert outcomes.get("refused", 0) > 20, outcomes


def test_fuzz_command_line(corpus: Path, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    """Random command lines over mutated files: a documented exit status, one line on
    stderr for an error, never a traceback."""
    from unembed.cli import main

    rng = random.Random(5)
    files = []
    for i in range(12):
        src = corpus / rng.choice(["w.npy", "w.safetensors", "w.pt", "labels.txt"])
        f = tmp_path / f"f{i}{src.suffix}"
        f.write_bytes(mutate_bytes(src.read_bytes(), rng) if i % 3 else src.read_bytes())
        files.append(str(f))
    files += [str(corpus / "w.npy"), str(tmp_path / "missing.npy"), str(tmp_path)]
    words = ["#0", "#1", "#9", "l1", "--json", "--unique-labels", "--fold", "--top", "2",
             "--radius", "-1", "arch", "--target", "0.5", "--pair", "--out",
             str(tmp_path / "o.npy"), "--labels", "--bias", "--link", "sigmoid", "--no-bias",
             "--softcap", "0", "--force", "--model", "--data", "--enumerate", "--kind",
             "rankings", "--argmaxable", "--top-two", "--workers", "1", "-n", "4"]
    for _ in range(60):
        cmd = rng.choice(["inspect", "cosine", "counterexample", "verify", "argmaxable",
                          "feasible", "audit"])
        argv = [cmd] + [rng.choice(files) if rng.random() < 0.3 else rng.choice(words)
                        for _ in range(rng.randint(0, 7))]
        code = main(argv)
        out, err = capsys.readouterr()
        assert code in (0, 1, 2), (argv, err)
        assert "Traceback" not in out + err, argv
        if code == 2:
            assert err.count("\n") == 1, (argv, err)


def test_mutators_are_seeded() -> None:
    a = mutate_bytes(b"0123456789" * 4, random.Random(3))
    b = mutate_bytes(b"0123456789" * 4, random.Random(3))
    assert a == b
    assert struct.calcsize("<Q") == 8
