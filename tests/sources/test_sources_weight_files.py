"""Weight files: formats and dtypes round-trip, bad files get one-line errors naming them."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from unembed import UnembedError, load_head_file
from unembed.gauges import translate
from unembed.sources.files import read_labels, read_tensor, write_head_like


@pytest.fixture
def W():
    return np.random.default_rng(0).standard_normal((6, 3))


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_safetensors_roundtrip_keeps_dtype_and_other_tensors(tmp_path, W, dtype):
    t = torch.from_numpy(W).to(getattr(torch, dtype))
    path = tmp_path / "m.safetensors"
    save_file({"lm_head.weight": t, "bias": torch.ones(6), "other": torch.zeros(2, 2)}, path)
    h = load_head_file(f"{path}:lm_head.weight", bias=f"{path}:bias")
    assert h.dtype == dtype
    np.testing.assert_array_equal(h.W, t.to(torch.float64).numpy())
    out = tmp_path / "n.safetensors"
    write_head_like(translate(h, np.ones(3)), out)
    back = read_tensor(f"{out}:lm_head.weight")
    assert back.dtype == dtype
    assert read_tensor(f"{out}:other").array.shape == (2, 2)


def test_npy_and_pt_roundtrip(tmp_path, W):
    np.save(tmp_path / "w.npy", W.astype(np.float32))
    h = load_head_file(tmp_path / "w.npy")
    assert h.dtype == "float32"
    torch.save({"head.weight": torch.from_numpy(W), "x": torch.ones(3)}, tmp_path / "s.pt")
    h2 = load_head_file(tmp_path / "s.pt")  # the only matrix is found
    np.testing.assert_array_equal(h2.W, W)
    write_head_like(translate(h2, np.ones(3)), tmp_path / "t.pt")
    sd = torch.load(tmp_path / "t.pt", weights_only=True)
    np.testing.assert_allclose(sd["head.weight"].numpy(), W + 1)
    assert set(sd) == {"head.weight", "x"}


def test_existing_target_needs_force_and_is_left_whole(tmp_path, W):
    np.save(tmp_path / "w.npy", W)
    h = load_head_file(tmp_path / "w.npy")
    (tmp_path / "out.npy").write_bytes(b"precious")
    with pytest.raises(UnembedError, match="already exists; pass --force \\(force=True\\)"):
        write_head_like(h, tmp_path / "out.npy")
    assert (tmp_path / "out.npy").read_bytes() == b"precious"
    write_head_like(h, tmp_path / "out.npy", force=True)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), W)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npy", "w.npy"]


def test_truncated_and_mislabelled_files(tmp_path, W):
    np.save(tmp_path / "w.npy", W)
    data = (tmp_path / "w.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(UnembedError, match=r"cut.npy: its header says shape \(6, 3\)"):
        load_head_file(tmp_path / "cut.npy")
    (tmp_path / "fake.safetensors").write_bytes(data)
    with pytest.raises(UnembedError, match="fake.safetensors: not a readable safetensors file"):
        load_head_file(tmp_path / "fake.safetensors")
    (tmp_path / "fake.pt").write_bytes(b"not a zip")
    with pytest.raises(UnembedError, match="fake.pt: not a readable torch file"):
        load_head_file(tmp_path / "fake.pt")
    with pytest.raises(UnembedError, match="no such file"):
        load_head_file(tmp_path / "missing.npy")
    (tmp_path / "w.txt").write_text("1 2 3")
    with pytest.raises(UnembedError, match="unknown weight file type '.txt'"):
        load_head_file(tmp_path / "w.txt")


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"w": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(UnembedError, match="refused to unpickle|not a readable torch file"):
        load_head_file(tmp_path / "evil.pt")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UnembedError, match="obj.npy: holds Python objects"):
        load_head_file(tmp_path / "obj.npy")


def test_ambiguous_and_unknown_tensor_names(tmp_path, W):
    save_file({"a": torch.from_numpy(W), "b": torch.from_numpy(W.copy())}, tmp_path / "m.safetensors")
    with pytest.raises(UnembedError, match=r"holds 2 matrix tensors \('a', 'b'\); name one"):
        load_head_file(tmp_path / "m.safetensors")
    with pytest.raises(UnembedError, match="no tensor named 'c'"):
        load_head_file(f"{tmp_path / 'm.safetensors'}:c")


def test_bias_shape_mismatch_and_nan_weights(tmp_path, W):
    np.save(tmp_path / "w.npy", W)
    np.save(tmp_path / "b.npy", np.ones(5))
    with pytest.raises(UnembedError, match=r"the bias has shape \(5,\).*6 rows"):
        load_head_file(tmp_path / "w.npy", bias=tmp_path / "b.npy")
    bad = W.copy()
    bad[2, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(UnembedError, match=r"nan.npy.*contains NaN or Inf.*row 2, column 1"):
        load_head_file(tmp_path / "nan.npy")


def test_labels_files(tmp_path):
    (tmp_path / "l.txt").write_text("cat\ndog\n")
    (tmp_path / "l.json").write_text('{"id2label": {"1": "dog", "0": "cat"}}')
    assert read_labels(tmp_path / "l.txt") == ["cat", "dog"]
    assert read_labels(tmp_path / "l.json") == ["cat", "dog"]
    (tmp_path / "gap.json").write_text('{"0": "a", "2": "b"}')
    with pytest.raises(UnembedError, match="without gaps"):
        read_labels(tmp_path / "gap.json")
