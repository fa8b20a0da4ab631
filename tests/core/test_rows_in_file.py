"""A head whose rows stay in their weight file (``Deferred``): the same figures, to the last
bit, as the same rows in memory; the same refusals; no float64 copy of the rows for work of
order V d. Checked against plain numpy on the whole matrix (an independent formulation)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from unembed import Head, cosine, load_head_file, neighbours
from unembed._checks import UnembedError
from unembed.neighbours import nearest


def _rows(V: int = 300, d: int = 24, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((V, d)) * 0.2 + rng.standard_normal(d)).astype(np.float32)


def _bf16_file(path, W32: np.ndarray) -> np.ndarray:
    """A one-tensor safetensors file of bfloat16 (the top 16 bits of W32, header written by
    hand); returns the float64 values it holds."""
    bits = (W32.view(np.uint32) >> 16).astype(np.uint16)
    header = json.dumps({"w": {"dtype": "BF16", "shape": list(W32.shape),
                               "data_offsets": [0, bits.nbytes]}}).encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(header)) + header + bits.tobytes())
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


@pytest.fixture(params=["float32.npy", "float16.npy", "bfloat16.safetensors"])
def pair(request, tmp_path):
    """(head read from a file, the same float64 values as an array)."""
    W32 = _rows()
    if request.param == "bfloat16.safetensors":
        path = tmp_path / "W.safetensors"
        W = _bf16_file(path, W32)
        return load_head_file(f"{path}:w"), W
    dt = np.float16 if request.param.startswith("float16") else np.float32
    path = tmp_path / "W.npy"
    np.save(path, W32.astype(dt))
    return load_head_file(path), W32.astype(dt).astype(np.float64)


def test_rows_stay_in_the_file_until_the_whole_matrix_is_asked_for(pair):
    head, W = pair
    assert not head.in_memory
    np.testing.assert_array_equal(head.row_block(10, 20), W[10:20])
    np.testing.assert_array_equal(head.take_rows([7, 3, 3, 299, 0]), W[[7, 3, 3, 299, 0]])
    np.testing.assert_allclose(head.stats.mean(), W.mean(axis=0), rtol=0, atol=1e-13)
    np.testing.assert_allclose(head.stats.norms(), np.linalg.norm(W, axis=1), rtol=1e-14)
    assert not head.in_memory
    np.testing.assert_array_equal(head.W, W)  # read whole, once, on first use
    assert head.in_memory and head.W is head.W


def test_stored_blocks_hold_the_float64_values_and_widen_in_the_first_operation(pair):
    """A block in its stored precision (float16, float32; bfloat16 read as float32): the
    same values as the float64 block, and centering it widens it exactly (the few-neighbour
    pass centers that way)."""
    head, W = pair
    B = head.stored_block(40, 90)
    assert B.dtype == (np.float16 if head.file.dtype == "float16" else np.float32)
    assert not B.flags.writeable
    np.testing.assert_array_equal(B.astype(np.float64), W[40:90])
    m = head.stats.mean()
    assert np.array_equal(np.subtract(B, m), W[40:90] - m)
    assert np.array_equal(Head(W).stored_block(40, 90), W[40:90])


@pytest.mark.parametrize("view", ["raw", "centered", "normalized", "differences", "causal"])
def test_every_view_gives_the_in_memory_figures_to_the_last_bit(pair, view):
    head, W = pair
    mem = Head(W)
    for a, b in [(0, 1), (5, 250), (299, 17)]:
        assert cosine(head, a, b, view) == cosine(mem, a, b, view)
    if view != "causal":  # the causal view's covariance is O(V d^2), but read in blocks too
        assert not head.in_memory


@pytest.mark.parametrize("view", ["raw", "centered", "normalized"])
def test_views_against_numpy_on_the_whole_matrix(pair, view):
    head, W = pair
    C = W - W.mean(axis=0)
    R = {"raw": W, "centered": C}.get(view)
    if R is None:
        U = C / np.linalg.norm(C, axis=1, keepdims=True)
        R = U - U.mean(axis=0)
    want = R[5] @ R[250] / np.linalg.norm(R[5]) / np.linalg.norm(R[250])
    assert cosine(head, 5, 250, view) == pytest.approx(want, abs=1e-13)


def test_neighbours_of_a_few_labels_against_numpy(pair):
    head, W = pair
    got = neighbours(head, ["#4", "#40"], k=6, view="centered")
    C = W - W.mean(axis=0)
    U = C / np.linalg.norm(C, axis=1, keepdims=True)
    for q in (4, 40):
        c = U @ U[q]
        c[q] = -np.inf
        order = sorted(range(len(c)), key=lambda j: (-c[j], j))[:6]
        items = got[str(q)]
        assert [x.index for x in items] == order
        np.testing.assert_allclose([x.cosine for x in items], c[order], atol=1e-13)
    assert not head.in_memory
    assert got == neighbours(Head(W), ["#4", "#40"], k=6, view="centered")


def _npy(tmp_path, W: np.ndarray):
    path = tmp_path / "bad.npy"
    np.save(path, W)
    return path


def test_nan_zero_and_identical_rows_are_refused_as_for_rows_in_memory(tmp_path):
    W = _rows().astype(np.float64)
    for broken, word in [("nan", "NaN or Inf"), ("zero", "all-zero row"),
                         ("same", "identical rows")]:
        B = W.copy()
        if broken == "nan":
            B[123, 5] = np.nan
            B[200, 0] = np.inf
        elif broken == "zero":
            B[77] = 0.0
        else:
            B[250] = B[31]
        path = _npy(tmp_path, B)
        with pytest.raises(UnembedError) as from_file:
            load_head_file(path)
        with pytest.raises(UnembedError) as in_memory:
            Head(B, source=str(path))
        assert word in str(from_file.value)
        assert str(from_file.value) == str(in_memory.value)
    # where: the first bad entry and the count, the zero row, the two labels
    B = W.copy()
    B[123, 5] = np.nan
    B[200, 0] = np.inf
    with pytest.raises(UnembedError, match=r"2 entries; first at row 123, column 5"):
        load_head_file(_npy(tmp_path, B))


def test_degenerate_rows_allowed_when_asked(tmp_path):
    W = _rows().astype(np.float64)
    W[77] = 0.0
    W[250] = W[31]
    head = load_head_file(_npy(tmp_path, W), strict=False)
    assert head.degenerate == {"zero_rows": ["77"], "identical_rows": [["31", "250"]]}
    assert not head.in_memory


def test_a_row_orthogonal_to_the_projection_is_not_taken_for_zero(tmp_path):
    """The first pass checks entry by entry a row whose projection on its fixed direction is
    0: such a row is nonzero (crafted here orthogonal to that direction)."""
    from unembed.row_stats import _KEY_SEED

    d = 24
    r = np.random.default_rng(_KEY_SEED).standard_normal(d)
    W = _rows().astype(np.float64)
    x = np.zeros(d)
    x[0], x[1] = r[1], -r[0]  # x . r = 0 exactly in floating point (two products, one sum)
    assert x @ r == 0.0
    W[9] = x
    head = load_head_file(_npy(tmp_path, W))
    assert head.degenerate == {}
    np.testing.assert_array_equal(head.take_rows([9])[0], x)


def test_a_new_head_with_other_metadata_keeps_the_rows_in_the_file(pair):
    head, W = pair
    relabelled = head.with_labels([f"t{i}" for i in range(head.n_labels)], "a test")
    noted = head.with_provenance(notes=["checked"])
    for h in (relabelled, noted):
        assert not h.in_memory
        assert cosine(h, 3, 4, "centered") == cosine(head, 3, 4, "centered")
    assert relabelled.labels[3] == "t3" and relabelled.labels_from == "a test"
    np.testing.assert_array_equal(head.subset(["#3", "#1"]).W, W[[3, 1]])


def _pair_differences_brute(W: np.ndarray, i: int, j: int,
                            N: np.ndarray | None = None) -> float:
    """min over k != i, j of cos(u_i - u_k, u_j - u_k), one k at a time."""
    best = np.inf
    for k in range(len(W)):
        if k in (i, j):
            continue
        a, b = W[i] - W[k], W[j] - W[k]
        if N is not None:
            a, b = a - N @ (N.T @ a), b - N @ (N.T @ b)
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        if na > 0 and nb > 0:
            best = min(best, float(a @ b / (na * nb)))
    return best


@pytest.mark.parametrize("case", ["random", "shared-mean", "near-duplicates", "null-space",
                                  "many-ties"])
def test_pair_differences_against_one_reference_label_at_a_time(case):
    rng = np.random.default_rng(11)
    W = rng.standard_normal((120, 16))
    N = None
    if case == "shared-mean":
        W = W * 1e-3 + 50.0 * rng.standard_normal(16)
    elif case == "near-duplicates":  # rows a rounding away from i and j
        W[30] = W[2] + 1e-13 * rng.standard_normal(16)
        W[31] = W[5] * (1 + 1e-15)
        W[32] = W[2] + 1e-7 * rng.standard_normal(16)
    elif case == "null-space":
        N = np.linalg.qr(rng.standard_normal((16, 2)))[0]
    elif case == "many-ties":  # every reference label at the same place up to a sign flip
        W = np.zeros((60, 3))
        W[:, 2] = np.where(np.arange(60) % 2, 1.0, -1.0) * (1 + np.arange(60) // 2)
        W[2], W[5] = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]
    head = Head(W, null_space=N, strict=False)
    for i, j in [(2, 5), (5, 2), (0, 1)]:
        want = _pair_differences_brute(W, i, j, head.null_space)
        assert cosine(head, i, j, "differences") == pytest.approx(want, abs=1e-12)


def test_neighbours_of_many_labels_use_the_float32_candidates_and_agree():
    """Above a few queries the float32 product selects candidates: the same answer as plain
    float64 sorting, ties by label index."""
    from unembed.few_neighbours import FEW as _FEW

    rng = np.random.default_rng(4)
    W = rng.standard_normal((150, 8)) + 0.3
    head = Head(W)
    q = np.arange(0, 150, 2)
    assert q.size > _FEW
    bi, bv = nearest(head, q, k=4, view="raw", block=17)
    n = np.linalg.norm(W, axis=1)
    for a, i in enumerate(q):
        c = (W @ W[i]) / (n * n[i])
        c[i] = -np.inf
        order = sorted(range(150), key=lambda j: (-c[j], j))[:4]
        assert bi[a].tolist() == order
        np.testing.assert_allclose(bv[a], c[order], atol=1e-12)


def test_a_head_keeps_reading_its_own_file_when_the_path_is_replaced(tmp_path):
    """The rows come from the file the head was read from, even after another file is
    renamed over its path (as every atomic write does)."""
    import os

    W = _rows().astype(np.float64)
    path = _npy(tmp_path, W)
    head = load_head_file(path)
    other = tmp_path / "other.npy"
    np.save(other, W + 1.0)
    os.replace(other, path)
    np.testing.assert_array_equal(head.row_block(0, 300), W)
    np.testing.assert_array_equal(head.W, W)
    np.testing.assert_array_equal(load_head_file(path).row_block(0, 5), W[:5] + 1.0)


def test_counterexample_over_its_own_input_verifies_against_the_original(tmp_path, capsys):
    """``--out`` naming the input file (with --force): the verification compares the rows as
    they were with the rows written (float32 rounding shows), not the new file with itself."""
    from unembed.cli import main

    W = _rows(200, 16).astype(np.float32)
    path = tmp_path / "W.npy"
    np.save(path, W)
    assert main(["counterexample", str(path), "--pair", "#1", "#2", "--target", "-0.5",
                 "--out", str(path), "--force", "--json", "-n", "64"]) == 0
    rec = json.loads(capsys.readouterr().out)
    new = np.load(path)
    assert np.abs(new.astype(np.float64) - W).max() > 0.1  # the file was replaced
    shift = new.astype(np.float64) - W
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-5)
    assert rec["verification"]["equivalent"]
    assert rec["verification"]["max_abs_dp"] > 1e-9  # float32 rounding of the moved rows


def test_populated_array_holds_what_is_written_and_is_freed_with_it(tmp_path):
    """populated_empty from its size threshold up: a float64 array backed by its own mapping
    (on Linux), every value written read back; a head read whole from a file through it has
    the file's rows exactly (float32 widened)."""
    import gc
    import mmap
    import sys
    import weakref

    from unembed._memory import populated_empty

    a = populated_empty((300, 7), min_bytes=1024)
    assert a.shape == (300, 7) and a.dtype == np.float64 and a.flags.c_contiguous
    if sys.platform == "linux":
        assert isinstance(a.base, mmap.mmap)
        ref = weakref.ref(a.base)
    a[...] = np.arange(2100.0).reshape(300, 7)
    np.testing.assert_array_equal(a, np.arange(2100.0).reshape(300, 7))
    del a
    gc.collect()
    if sys.platform == "linux":
        assert ref() is None  # the mapping went with the array
    small = populated_empty((3, 4), min_bytes=1 << 20)  # below the threshold: np.empty
    assert small.shape == (3, 4) and not isinstance(small.base, mmap.mmap)
    rng = np.random.default_rng(4)
    W = rng.standard_normal((3000, 3000)).astype(np.float32)  # 72 MB in float64: mapped
    np.save(tmp_path / "w.npy", W)
    head = load_head_file(str(tmp_path / "w.npy"))
    got = head.W
    assert got.dtype == np.float64 and not got.flags.writeable
    np.testing.assert_array_equal(got, W.astype(np.float64))
    if sys.platform == "linux":
        assert isinstance(got.base, mmap.mmap)
