"""The fused equivalence figures (max |dp|, max |dlog p|, mean KL, argmax agreement) against a
plain float64 computation with scipy's log-softmax and log-sigmoid, on the whole logits: for
softmax and sigmoid heads, with a bias, a logit scale and a soft-cap, second heads stored in
float16 and bfloat16, the translated head formed from the first head's logits, several chunks of
inputs, and the random hidden states' scale."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import expit, log_expit, log_softmax

from unembed import Head, UnembedError
from unembed.equivalence import (
    StoredRows,
    Translated,
    _inputs_per_chunk,
    compare_head_rows_many,
    compare_logits,
    random_hidden,
)


def direct(z1, z2, link="softmax"):
    """(max |dp|, max |dlog p|, mean KL, agreement) from the whole (n, V) logits."""
    z1, z2 = np.asarray(z1, np.float64), np.asarray(z2, np.float64)
    if link == "softmax":
        lp, lq = log_softmax(z1, axis=1), log_softmax(z2, axis=1)
        p, q = np.exp(lp), np.exp(lq)
        kl = (p * (lp - lq)).sum(axis=1)
        agree = np.mean(z1.argmax(axis=1) == z2.argmax(axis=1))
    else:
        lp, lq = log_expit(z1), log_expit(z2)
        p, q = expit(z1), expit(z2)
        kl = (p * (lp - lq) + (1 - p) * (log_expit(-z1) - log_expit(-z2))).sum(axis=1)
        agree = np.mean(((z1 > 0) == (z2 > 0)).all(axis=1))
    return (np.abs(p - q).max(), np.abs(lp - lq).max(), max(kl.mean(), 0.0), agree)


def logits(W, H, b=None, scale=1.0, cap=None):
    z = H @ np.asarray(W, np.float64).T + (0.0 if b is None else b)
    z = z * scale
    return z if cap is None else cap * np.tanh(z / cap)


def assert_figures(eq, want, *, dp=1e-15, dlogp=1e-12, kl=1e-13):
    assert eq.max_abs_dp == pytest.approx(want[0], abs=dp)
    assert eq.max_abs_dlogp == pytest.approx(want[1], abs=dlogp, rel=1e-9)
    assert eq.mean_kl == pytest.approx(want[2], abs=kl, rel=1e-9)
    assert eq.argmax_agreement == pytest.approx(want[3], abs=1e-15)


def bf16(x):
    """x rounded to the nearest bfloat16 (ties to even), as float32."""
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    up = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return (up.astype(np.uint32) << 16).view(np.float32)


@pytest.mark.parametrize("link", ["softmax", "sigmoid"])
def test_logit_figures_match_scipy(link):
    rng = np.random.default_rng(0)
    z1 = rng.standard_normal((60, 40)) * 4
    z2 = z1 + rng.standard_normal((60, 40)) * 0.3
    z2[:5] = z1[:5] + 7.0  # a uniform shift: the same softmax, another sigmoid
    assert_figures(compare_logits(z1, z2, link), direct(z1, z2, link))
    same = compare_logits(z1, z1.copy(), link)
    assert same.max_abs_dp == 0 and same.max_abs_dlogp == 0 and same.argmax_agreement == 1


def test_logit_figures_with_near_one_hot_rows():
    rng = np.random.default_rng(1)
    z1 = rng.standard_normal((30, 500)) * 40  # probabilities down to exp(-300)
    z2 = z1 + rng.standard_normal((30, 500)) * 1e-6
    assert_figures(compare_logits(z1, z2), direct(z1, z2), kl=1e-15)


@pytest.mark.parametrize("which", ["z1", "z2"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_logits_are_refused_by_name(which, bad):
    z = np.zeros((3, 4))
    z1, z2 = z.copy(), z.copy()
    (z1 if which == "z1" else z2)[1, 2] = bad
    for link in ("softmax", "sigmoid"):
        with pytest.raises(UnembedError, match=f"'{which}'.*finite"):
            compare_logits(z1, z2, link)


CASES = {
    "softmax, bias": dict(link="softmax", bias=True),
    "softmax, logit scale": dict(link="softmax", scale=2.5),
    "softmax, soft-capped": dict(link="softmax", bias=True, cap=6.0),
    "sigmoid, bias": dict(link="sigmoid", bias=True),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("stored", ["float16", "bfloat16", "float32"])
def test_stored_rows_match_direct_figures(case, stored):
    c = CASES[case]
    rng = np.random.default_rng(2)
    V, d = 300, 16
    W = rng.standard_normal((V, d))
    b = rng.standard_normal(V) if c.get("bias") else None
    scale, cap = c.get("scale", 1.0), c.get("cap")
    head = Head(W, b=b, link=c["link"], logit_scale=scale, softcap=cap)
    moved = W + rng.standard_normal(d)
    written = (moved.astype(np.float16) if stored == "float16" else
               bf16(moved) if stored == "bfloat16" else moved.astype(np.float32))
    H = rng.standard_normal((50, d))
    (eq,) = compare_head_rows_many(head, [StoredRows(lambda s, e: written[s:e], stored)], H)
    want = direct(logits(W, H, b, scale, cap), logits(written, H, b, scale, cap), c["link"])
    assert_figures(eq, want)
    assert eq.dtype == stored and eq.n_inputs == 50


@pytest.mark.parametrize("case", list(CASES))
def test_translated_head_matches_the_moved_rows(case):
    """The translated head's figures, formed from the first head's logits, are those of the
    rows u_k + c multiplied out: zero up to rounding where the translation is a symmetry
    (softmax without a cap), the same non-zero figures where it is not."""
    c = CASES[case]
    rng = np.random.default_rng(3)
    V, d = 200, 12
    W = rng.standard_normal((V, d))
    b = rng.standard_normal(V) if c.get("bias") else None
    scale, cap = c.get("scale", 1.0), c.get("cap")
    head = Head(W, b=b, link=c["link"], logit_scale=scale, softcap=cap)
    shift = rng.standard_normal(d) * 3
    H = rng.standard_normal((40, d))
    (eq,) = compare_head_rows_many(head, [Translated(shift)], H)
    want = direct(logits(W, H, b, scale, cap), logits(W + shift, H, b, scale, cap), c["link"])
    symmetry = c["link"] == "softmax" and cap is None
    assert eq.equivalent == symmetry
    if symmetry:
        assert eq.max_abs_dp < 1e-13 and want[0] < 1e-13 and eq.mean_kl < 1e-15
        assert eq.max_abs_dlogp < 1e-11 and eq.argmax_agreement == 1
    else:
        assert_figures(eq, want, dp=1e-12, dlogp=1e-10, kl=1e-12)


def test_several_chunks_give_the_figures_of_the_whole_logits():
    rng = np.random.default_rng(4)
    V, d, n = 5000, 6, 2000
    assert _inputs_per_chunk(n, V, d, 4) < n  # the pass below is split
    W = rng.standard_normal((V, d))
    head = Head(W, b=rng.standard_normal(V))
    other = (W + rng.standard_normal((V, d)) * 1e-3).astype(np.float32)
    H = rng.standard_normal((n, d))
    got = compare_head_rows_many(head, [StoredRows(lambda s, e: other[s:e], "float32"),
                                        Translated(np.ones(d))], H)
    assert_figures(got[0], direct(logits(W, H, head.b), logits(other, H, head.b)))
    assert got[1].max_abs_dp < 1e-13 and got[0].n_inputs == got[1].n_inputs == n


@pytest.mark.parametrize("mean", [0.0, 1e3])
@pytest.mark.parametrize("n", [40, 200])
def test_random_hidden_scale_is_the_spread_of_the_centered_logits(mean, n):
    """H is drawn from N(0, I/d) and scaled by 3 / sigma, sigma the standard deviation of
    z - rowmean(z) over every entry of the first min(n, 64) states (z = H W^T); the first
    quarter ten times larger. Rows sharing a large mean do not lose the digits of sigma."""
    rng = np.random.default_rng(5)
    V, d = 400, 10
    W = rng.standard_normal((V, d)) + mean
    head = Head(W)
    H0 = np.random.default_rng([7, 0x5EED]).standard_normal((n, d)) / np.sqrt(d)
    z = H0[:64] @ (W - W.mean(axis=0)).T
    want = H0 * 3.0 / (z - z.mean(axis=1, keepdims=True)).std()
    want[: n // 4] *= 10
    np.testing.assert_allclose(random_hidden(head, n, seed=7), want, rtol=1e-9)


def test_counterexample_figures_match_the_file_it_wrote(tmp_path, capsys):
    """The CLI's verification of a written float16 head: its figures are those of the rows
    re-read from the file, multiplied out in float64; the construction's, those of the rows
    u_k + c (zero up to rounding)."""
    from unembed.cli import main

    rng = np.random.default_rng(6)
    V, d = 120, 8
    W = rng.standard_normal((V, d)).astype(np.float16)
    np.save(tmp_path / "W.npy", W)
    H = rng.standard_normal((30, d)) * 3
    np.save(tmp_path / "H.npy", H)
    rc = main(["counterexample", str(tmp_path / "W.npy"), "--pair", "#1", "#2", "--target",
               "-0.5", "--out", str(tmp_path / "new.npy"), "--data", str(tmp_path / "H.npy"),
               "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["verification"]["equivalent"]
    new = np.load(tmp_path / "new.npy")
    assert new.dtype == np.float16
    want = direct(H @ W.astype(np.float64).T, H @ new.astype(np.float64).T)
    ver = out["verification"]
    assert ver["max_abs_dp"] == pytest.approx(want[0], abs=1e-15)
    assert ver["max_abs_dlogp"] == pytest.approx(want[1], rel=1e-9, abs=1e-12)
    assert ver["mean_kl"] == pytest.approx(want[2], rel=1e-6, abs=1e-15)
    assert ver["argmax_agreement"] == want[3]
    assert out["equivalence"]["max_abs_dp"] < 1e-13 and out["equivalence"]["equivalent"]
    assert set(out["seconds"]) == set(out["cpu_seconds"]) == {"read", "construct", "write",
                                                            "verify"}


def test_a_failure_while_the_file_is_written_leaves_the_old_file(tmp_path):
    """The file is written by a second thread while the random hidden states are drawn: when
    drawing them fails, the writer stops and removes its temporary, and the file that was at
    ``out`` (replaced only with ``force``) is left as it was, with nothing beside it."""
    from unembed.export.weights import write_weights
    from unembed.sources import load_head_file

    rng = np.random.default_rng(8)
    np.save(tmp_path / "W.npy", rng.standard_normal((100000, 64)).astype(np.float32))
    head = load_head_file(str(tmp_path / "W.npy"))
    (tmp_path / "out").mkdir()
    old = tmp_path / "out" / "new.npy"
    np.save(old, np.zeros(3))
    before = old.read_bytes()
    with pytest.raises(ValueError):
        write_weights(head, old, shift=np.ones(64), force=True, n_random=-1)
    assert old.read_bytes() == before
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["new.npy"]


def test_writing_and_verifying_never_reads_the_whole_matrix(tmp_path):
    """What counterexample does to a head left in its file (the translation, the stored
    cosine, writing, re-reading and both comparisons) walks its rows in blocks: the head never
    reads its whole float64 matrix."""
    from unembed.construct import cosine_translation, stored_cosine
    from unembed.export.weights import write_weights
    from unembed.sources import load_head_file

    rng = np.random.default_rng(9)
    np.save(tmp_path / "W.npy", rng.standard_normal((3000, 16)).astype(np.float32))
    head = load_head_file(str(tmp_path / "W.npy"))
    assert not head.in_memory
    res = cosine_translation(head, "#3", "#4", -0.5)
    stored_cosine(head, res.indices, res.c, "float16")
    got = write_weights(head, tmp_path / "new.npy", shift=res.c, n_random=64,
                        pair=res.indices, check_shift=True)
    assert got.equivalence.equivalent and got.construction is not None
    assert not head.in_memory
