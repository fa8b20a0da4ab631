"""Neighbours of a few labels whose rows stay in a float32 or float16 file: the block is
selected in float32 with the proven bound E_j of :mod:`unembed.few_neighbours`, and every
label the float64 re-score ranks in the top k is kept. The reference is the float64 re-score
formed whole in numpy over every label, sorted by (-cosine, label index)."""

from __future__ import annotations

import numpy as np
import pytest

import unembed.few_neighbours as few
from unembed import Head, load_head_file
from unembed.neighbours import nearest


def _file_head(tmp_path, W: np.ndarray):
    path = tmp_path / "W.npy"
    np.save(path, W)
    return load_head_file(path)


def _reference(W: np.ndarray, m: np.ndarray | None, q: int, k: int) -> tuple[list[int],
                                                                              np.ndarray]:
    """The top k of label q by the float64 re-score of every label, formed whole."""
    R = W if m is None else W - m
    n = np.sqrt(np.einsum("ij,ij->i", R, R))
    ok = n > 1e-300
    U = R / np.where(ok, n, 1.0)[:, None]
    v = np.einsum("ij,ij->i", U, np.broadcast_to(U[q], U.shape))
    v[~ok] = -np.inf
    v[q] = -np.inf
    order = sorted(range(len(v)), key=lambda j: (-v[j], j))[:k]
    val = v[order]
    return order, np.where(np.isfinite(val), np.clip(val, -1, 1), np.nan)


def _spy(monkeypatch) -> list[bool]:
    """Records, per block tried in float32, whether float32 decided it (True) or float64."""
    seen: list[bool] = []
    real = few._narrow_candidates

    def spy(*args, **kwargs):
        got = real(*args, **kwargs)
        seen.append(got is not None)
        return got

    monkeypatch.setattr(few, "_narrow_candidates", spy)
    return seen


def _near_ties(rng: np.random.Generator, d: int, scaled: bool) -> np.ndarray:
    """Float32 rows: 60 copies of one row with single entries moved by one float32 step
    (cosines with each other within about 1e-8, far below what a float32 product resolves),
    20 of them scaled by powers of two from 2^-20 to 2^20 (exact ties with their originals
    in the raw view; only when ``scaled``: their size would put the mean far from the other
    rows), 300 unrelated rows."""
    base = rng.standard_normal(d).astype(np.float32)
    near = np.repeat(base[None], 60, axis=0)
    for a in range(60):  # distinct rows: entry a moved, up or down
        near[a, a] = np.nextafter(near[a, a], np.float32(np.inf if a % 2 else -np.inf))
    powers = rng.choice(np.r_[-20:0, 1:21], 20).astype(np.float32)
    big = near[:20] * (np.float32(2.0) ** powers)[:, None]
    far = rng.standard_normal((300, d)).astype(np.float32)
    return np.vstack([near, big, far] if scaled else [near, far]).astype(np.float32)


def _check(head, W: np.ndarray, q: list[int], k: int, view: str) -> None:
    """nearest() on ``head`` against the reference over W, label for label, to the last bit."""
    bi, bv = nearest(head, np.array(q), k=k, view=view)
    m = None if view == "raw" else head.stats.mean()
    for a, i in enumerate(q):
        order, val = _reference(W, m, i, k)
        keep = np.isfinite(val)
        assert bi[a].tolist() == [j if ok else -1 for j, ok in zip(order, keep)]
        np.testing.assert_array_equal(bv[a][keep], val[keep])
        assert np.isnan(bv[a][~keep]).all()


def _check_where_float32_reorders(head, W: np.ndarray, x64: np.ndarray, x32: np.ndarray,
                                  below: float, view: str, monkeypatch) -> None:
    """_check of label 0 at the first k (20..399) where a label of the float64 top k (x64)
    has a float32 value (x32) more than ``below`` under float32's k-th, so float32 alone
    would lose it; the float32 selection must still decide some block."""
    k = next(k for k in range(20, 400) if x32[np.argsort(-x64, kind="stable")[:k]].min()
             < np.sort(x32)[::-1][k - 1] - below)
    seen = _spy(monkeypatch)
    _check(head, W, [0], k, view)
    assert any(seen)


@pytest.mark.parametrize("view", ["raw", "centered"])
def test_a_few_queries_of_float32_rows_keep_every_near_tie(tmp_path, monkeypatch, view):
    W32 = _near_ties(np.random.default_rng(5), 64, scaled=view == "raw")
    head = _file_head(tmp_path, W32)
    W = W32.astype(np.float64)
    seen = _spy(monkeypatch)
    q = [0, 3, 61, 139]
    _check(head, W, q, 30, view)
    assert any(seen), "the float32 selection decided no block"
    # the same figures as the float64 path on the same values held in memory
    got = nearest(head, np.array(q), k=30, view=view)
    want = nearest(Head(W), np.array(q), k=30, view=view)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_float16_rows_take_the_same_path_and_agree(tmp_path, monkeypatch):
    W16 = (np.random.default_rng(8).standard_normal((200, 32)) + 0.5).astype(np.float16)
    head = _file_head(tmp_path, W16)
    seen = _spy(monkeypatch)
    _check(head, W16.astype(np.float64), [2, 150], 12, "centered")
    assert any(seen)


def test_rows_far_from_the_origin_keep_their_centered_order(tmp_path):
    """Rows 1e4 from the origin with a spread of 1: the mean rounded to float32 is off by
    about 1e-3 of a centered row, which the bound carries (more candidates, same answer)."""
    rng = np.random.default_rng(9)
    W32 = (1e4 * rng.standard_normal(24) + rng.standard_normal((300, 24))).astype(np.float32)
    _check(_file_head(tmp_path, W32), W32.astype(np.float64), [0, 299], 10, "centered")


def test_rows_sharing_one_large_direction_are_selected_about_their_mean(tmp_path,
                                                                       monkeypatch):
    """Raw rows that all share one large direction (1e3 times the rest) have raw cosines
    within about 1e-6 of each other, which a float32 product of the rows themselves cannot
    separate; about their mean only the small parts are rounded, and float32 decides."""
    rng = np.random.default_rng(10)
    d = 16
    W32 = (1e3 * rng.standard_normal(d) + rng.standard_normal((800, d))).astype(np.float32)
    head = _file_head(tmp_path, W32)
    monkeypatch.setattr(few, "_NARROW_BLOCK_BYTES", 8 * d * 20)  # 40 blocks of 20 rows
    seen = _spy(monkeypatch)
    for k in (10, 60):
        _check(head, W32.astype(np.float64), [0, 5], k, "raw")
    assert sum(seen) >= 0.7 * len(seen)  # not the first blocks (their k-th is still low)


def test_blocks_float32_cannot_separate_are_given_to_float64(tmp_path, monkeypatch):
    """Centered rows 1e7 from the origin with a spread of 2: fl32(m) is off by about a
    quarter of a centered row, so every row is a candidate and every block is done in
    float64; after the first few blocks the float32 attempt stops."""
    rng = np.random.default_rng(10)
    d = 16
    W32 = (1e7 * rng.standard_normal(d) + 2 * rng.standard_normal((800, d))).astype(np.float32)
    head = _file_head(tmp_path, W32)
    monkeypatch.setattr(few, "_NARROW_BLOCK_BYTES", 8 * d * 20)  # 40 blocks of 20 rows
    seen = _spy(monkeypatch)
    _check(head, W32.astype(np.float64), [0, 5], 10, "centered")
    assert seen == [False] * few._TRIAL


def test_a_row_with_no_centered_direction_is_never_a_neighbour(tmp_path, monkeypatch):
    """Rows a, b, 2a - b and mirror pairs a +- x_t: their mean is a, so row 0 has no
    centered direction (its float32 norm, 0, is below the trusted range): decided in float64,
    never a neighbour."""
    rng = np.random.default_rng(12)
    d = 16
    a = rng.integers(-8, 9, d).astype(np.float32)
    b = rng.integers(-8, 9, d).astype(np.float32)
    x = rng.integers(-64, 65, (48, d)).astype(np.float32) / np.float32(8)
    W32 = np.vstack([a, b, 2 * a - b, a + x, a - x]).astype(np.float32)
    head = _file_head(tmp_path, W32)
    assert np.array_equal(head.stats.mean(), a.astype(np.float64))
    seen = _spy(monkeypatch)
    _check(head, W32.astype(np.float64), [1, 60], 10, "centered")  # row 0 a candidate
    assert any(seen)
    _check(head, W32.astype(np.float64), [1, 60], 98, "centered")  # every label
    assert 0 not in nearest(head, np.array([1, 60]), k=98, view="centered")[0]


def test_rows_of_tiny_norm_are_decided_in_float64(tmp_path, monkeypatch):
    """Rows of norm about 4e-22 (below 2^-40: their float32 squares are subnormal, good to
    a few digits only) among rows of norm about 4: always candidates, ranked by their
    float64 rows."""
    rng = np.random.default_rng(13)
    d = 16
    W32 = np.vstack([rng.standard_normal((300, d)),
                     1e-22 * rng.standard_normal((100, d))]).astype(np.float32)
    head = _file_head(tmp_path, W32)
    seen = _spy(monkeypatch)
    for k in (40, 60, 80):
        _check(head, W32.astype(np.float64), [0, 301], k, "raw")
    assert any(seen)


@pytest.mark.parametrize("view", ["raw", "centered"])
def test_rows_whose_float32_cosines_reorder_are_ranked_by_float64(tmp_path, monkeypatch, view):
    """400 rows at 45 degrees to the query, moved by about 1e-6: their cosines differ by
    about 1e-6, as much as a float32 product's own rounding, so the float32 order near the
    k-th differs from the float64 one; the bound keeps every row that ranks."""
    rng = np.random.default_rng(14)
    d = 64
    a = rng.standard_normal(d)
    b = rng.standard_normal(d)
    b -= (a @ b) / (a @ a) * a
    b *= np.linalg.norm(a) / np.linalg.norm(b)
    rows = a + b + 1e-6 * rng.standard_normal((400, d))
    far = rng.standard_normal((600, d))
    W32 = np.vstack([a, rows, far]).astype(np.float32)
    head = _file_head(tmp_path, W32)
    W = W32.astype(np.float64)
    seen = _spy(monkeypatch)
    _check(head, W, [0], 60, view)
    assert any(seen)
    # float32 does reorder these rows (else this test would test nothing)
    m = np.zeros(d) if view == "raw" else head.stats.mean()
    R64 = W - m
    R32 = (W32 - m.astype(np.float32)).astype(np.float32)
    c64 = R64[1:401] @ R64[0] / np.linalg.norm(R64[1:401], axis=1)
    c32 = (R32[1:401] @ R32[0]) / np.linalg.norm(R32[1:401], axis=1)
    assert not np.array_equal(np.argsort(-c64, kind="stable")[:60],
                              np.argsort(-c32.astype(np.float64), kind="stable")[:60])



def test_the_mean_rounded_to_float32_is_carried_by_the_bound(tmp_path, monkeypatch):
    """Rows on a cone of 45 degrees around the query's centered row, 1e5 from the origin in
    d = 8: fl32(m) is off from the mean by about 1e-3 of a centered row, which moves each
    row's float32 cosine differently (by its direction on the cone) and more than the rows'
    cosines differ; the bound's |m - fl32(m)| term keeps every row that ranks."""
    rng = np.random.default_rng(15)
    d = 8
    a = 3 * rng.standard_normal(d)
    v = rng.standard_normal((400, d))
    v -= np.outer(v @ a / (a @ a), a)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    x = np.linalg.norm(a) * (np.sqrt(0.5) * a / np.linalg.norm(a) + np.sqrt(0.5) * v)
    offset = 1e5 * rng.standard_normal(d)
    W32 = np.vstack([offset + a, offset - a, offset + x, offset - x,
                     offset + 3 * rng.standard_normal((600, d))]).astype(np.float32)
    head = _file_head(tmp_path, W32)
    W = W32.astype(np.float64)
    m = head.stats.mean()
    C = W - m
    q = C[0] / np.linalg.norm(C[0])
    x64 = C @ q / np.linalg.norm(C, axis=1)
    R = np.subtract(W32, m.astype(np.float32), dtype=np.float32)  # centered in float32
    x32 = (R @ q.astype(np.float32)).astype(np.float64) / np.linalg.norm(R, axis=1)
    x64[0] = x32[0] = -np.inf
    # a k where a label of float64's top k lies 3e-5 below float32's k-th value (five times
    # the bound without its mean term, 3 gamma32_{d+2}, plus its margins)
    _check_where_float32_reorders(head, W, x64, x32, 3e-5, "centered", monkeypatch)


def test_raw_rows_about_their_mean_keep_every_row_that_ranks(tmp_path, monkeypatch):
    """400 rows at 10 degrees from the query's row (raw cosines equal but for their rounding
    to float32, about 1e-7 apart) and 600 rows at 20 to 40 degrees: they share a large
    common part, so the raw selection goes about the mean, and its float32 values order the
    rows near the k-th differently from float64; the bound keeps every row that ranks."""
    rng = np.random.default_rng(16)
    d = 8

    def cone(deg: np.ndarray) -> np.ndarray:
        v = rng.standard_normal((deg.size, d))
        v -= np.outer(v @ q, q)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        t = np.radians(deg)[:, None]
        return 10 * (np.cos(t) * q + np.sin(t) * v)

    q = rng.standard_normal(d)
    q /= np.linalg.norm(q)
    W32 = np.vstack([10 * q, cone(np.full(400, 10.0)),
                     cone(rng.uniform(20, 40, 600))]).astype(np.float32)
    head = _file_head(tmp_path, W32)
    W = W32.astype(np.float64)
    assert few._common_part(head)
    # the float32 selection values about the mean, as the module docstring forms them
    m32 = head.stats.mean().astype(np.float32)
    m64 = m32.astype(np.float64)
    qq = W[0] / np.linalg.norm(W[0])
    R = np.subtract(W32, m32, dtype=np.float32)
    P = (R @ np.stack([qq, m64], axis=1).astype(np.float32)).astype(np.float64)
    N = np.sqrt(m64 @ m64 + 2 * P[:, 1] + np.einsum("ij,ij->i", R, R).astype(np.float64))
    s = (qq @ m64 + P[:, 0]) / N
    x64 = W @ qq / np.linalg.norm(W, axis=1)
    s[0] = x64[0] = -np.inf
    _check_where_float32_reorders(head, W, x64, s, 1e-9, "raw", monkeypatch)
