"""A weight file stored (d, V), one column per label (TransformerLens's ``W_U``), is refused
when its labels or its name say so, and read with ``--transpose`` / ``transpose=True``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from conftest import run_cli
from unembed import UnembedError, load

D, V = 4, 10
LABELS = [f"w{i}" for i in range(V)]


@pytest.fixture
def files(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    W_U = rng.standard_normal((D, V))  # logits = h @ W_U
    np.save(tmp_path / "WU.npy", W_U)
    save_file({"unembed.W_U": W_U, "embed.W_E": rng.standard_normal((V, D))},
              str(tmp_path / "tl.safetensors"))
    save_file({"W_U": np.ascontiguousarray(W_U.T)}, str(tmp_path / "rows.safetensors"))
    (tmp_path / "labels.txt").write_text("\n".join(LABELS) + "\n")
    np.save(tmp_path / "b.npy", rng.standard_normal(V))
    return tmp_path


def one_line(r: Any) -> str:
    err = str(r.stderr)
    assert r.returncode == 2 and err.count("\n") == 1, err
    return err


def test_labels_counting_the_columns_are_refused_as_transposed(files: Path) -> None:
    err = one_line(run_cli("inspect", files / "WU.npy", "--labels", files / "labels.txt"))
    assert "WU.npy: the head looks transposed: 10 labels match its 10 columns, not its 4 rows" \
        in err and "pass --transpose" in err and "transpose=True" not in err


def test_a_tensor_named_w_u_is_refused_as_transposed(files: Path) -> None:
    err = one_line(run_cli("argmaxable", f"{files / 'tl.safetensors'}:unembed.W_U"))
    assert "tl.safetensors:unembed.W_U: the tensor 'unembed.W_U'" in err
    assert "looks transposed" in err and "--transpose" in err
    with pytest.raises(UnembedError, match=r"looks transposed; pass --transpose \(transpose=True\)"):
        load(f"{files / 'tl.safetensors'}:unembed.W_U")


def test_transpose_reads_the_columns_as_the_labels_rows(files: Path) -> None:
    W = np.load(files / "WU.npy").T  # independent: the rows the user means
    r = run_cli("cosine", files / "WU.npy", "--transpose", "--labels", files / "labels.txt",
                "w2", "w7", "--view", "raw", "--json")
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    want = W[2] @ W[7] / (np.linalg.norm(W[2]) * np.linalg.norm(W[7]))
    assert rec["cosine"]["raw"] == pytest.approx(want, abs=1e-12)
    model = load(f"{files / 'tl.safetensors'}:unembed.W_U", transpose=True,
                 bias=files / "b.npy")
    assert model.head.W.shape == (V, D) and np.array_equal(model.head.W, W)
    assert model.head.W.flags.c_contiguous and model.head.file is None
    h = np.random.default_rng(0).standard_normal((3, D))
    assert np.allclose(model.model_logits(h), h @ W.T + np.load(files / "b.npy"), atol=1e-12)


def test_a_w_u_name_with_labels_counting_its_rows_is_read_as_stored(files: Path) -> None:
    r = run_cli("inspect", files / "rows.safetensors", "--labels", files / "labels.txt",
                "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n_labels"] == V


def test_transpose_is_refused_where_it_means_nothing(files: Path, tmp_path: Path) -> None:
    err = one_line(run_cli("counterexample", files / "WU.npy", "--transpose", "--pair", "#0",
                           "#1", "--target", "0", "--out", tmp_path / "out.npy"))
    assert "--transpose does not apply to counterexample" in err
    assert not (tmp_path / "out.npy").exists()
    (tmp_path / "model").mkdir()
    err = one_line(run_cli("inspect", "--model", tmp_path / "model", "--transpose"))
    assert "transpose" in err
