"""Behaviour accumulators: exact against a direct computation on the whole data, mergeable."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unembed import UnembedError
from unembed.behaviour import (
    ArrayInputs,
    LabelTally,
    PairStats,
    TextWindows,
    collect,
    open_data,
    top_k_indices,
)
from unembed.head import Head, logits_to_log_probs
from unembed.sources.base import HeadModel


def _log_probs(n: int, v: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return logits_to_log_probs(rng.normal(size=(n, v)) * 3, "softmax")


def _direct(lp: np.ndarray, idx: np.ndarray, top_k: int) -> dict[str, np.ndarray]:
    """Each measure straight from its definition, pair by pair, on all inputs at once."""
    sel = lp[:, idx]
    p = np.exp(sel)
    k = idx.size
    rank = np.argsort(-lp, axis=1)[:, :top_k]
    in_top = np.array([[j in set(r) for j in idx] for r in rank])
    out = {m: np.zeros((k, k)) for m in ("corr_p", "corr_logp", "mean_min", "co_topk")}
    for a in range(k):
        for b in range(k):
            out["corr_p"][a, b] = np.corrcoef(p[:, a], p[:, b])[0, 1]
            out["corr_logp"][a, b] = np.corrcoef(sel[:, a], sel[:, b])[0, 1]
            out["mean_min"][a, b] = np.minimum(p[:, a], p[:, b]).mean()
            out["co_topk"][a, b] = (in_top[:, a] & in_top[:, b]).mean()
    return out


def test_pair_stats_match_direct_computation() -> None:
    lp = _log_probs(300, 12, 0)
    idx = np.array([0, 3, 4, 7, 11])
    acc = PairStats(idx, 3)
    for s in range(0, 300, 37):
        acc.update(lp[s:s + 37], s)
    got = acc.matrices()
    want = _direct(lp, idx, 3)
    for m, w in want.items():
        np.testing.assert_allclose(got[m], w, atol=1e-12, err_msg=m)
    # witnesses: the input where min(p_i, p_j) is largest, and that value
    p = np.exp(lp[:, idx])
    for a in range(idx.size):
        for b in range(idx.size):
            mins = np.minimum(p[:, a], p[:, b])
            assert acc.best_at[a, b] == int(mins.argmax())
            assert acc.best_min[a, b] == pytest.approx(mins.max(), abs=0)
            assert acc.best_p[a, b] == p[acc.best_at[a, b], a]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 60), cut=st.integers(0, 60), seed=st.integers(0, 10_000),
       k=st.integers(1, 4))
def test_shards_merge_to_the_whole(n: int, cut: int, seed: int, k: int) -> None:
    cut = min(cut, n)
    lp = _log_probs(n, 9, seed)
    idx = np.array([1, 2, 5, 8])
    whole = PairStats(idx, k)
    whole.update(lp, 0)
    a, b = PairStats(idx, k), PairStats(idx, k)
    a.update(lp[:cut], 0)
    b.update(lp[cut:], cut)
    merged = a.merge(b)
    assert merged.n == whole.n
    for m, w in whole.matrices().items():
        np.testing.assert_allclose(merged.matrices()[m], w, atol=1e-10, equal_nan=True,
                                   err_msg=m)
    np.testing.assert_array_equal(merged.both_top, whole.both_top)
    np.testing.assert_allclose(merged.best_min, whole.best_min, rtol=0, atol=0)
    np.testing.assert_allclose(merged.best_p, whole.best_p, rtol=0, atol=0)
    ta, tb, tw = LabelTally.empty(9), LabelTally.empty(9), LabelTally.empty(9)
    ta.update(lp[:cut])
    tb.update(lp[cut:])
    tw.update(lp)
    t = ta.merge(tb)
    np.testing.assert_allclose(t.sum_p, tw.sum_p, atol=1e-12)
    np.testing.assert_array_equal(t.argmax_count, tw.argmax_count)


def test_top_k_indices_and_tally_top() -> None:
    lp = np.log(np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]]))
    assert [sorted(r) for r in top_k_indices(lp, 2).tolist()] == [[0, 1], [1, 2]]
    t = LabelTally.empty(3)
    t.update(lp)
    assert t.top(2) == [1, 0]
    with pytest.raises(UnembedError, match=r"shape \(n, 3\)"):
        t.update(np.zeros((2, 4)))


class _Linear(HeadModel):
    """A real (if tiny) model: a fixed random feature map then a head."""

    kind = "test"

    def __init__(self, v: int, seed: int = 0, link: str = "softmax") -> None:
        rng = np.random.default_rng(seed)
        self.a = rng.normal(size=(6, 4))
        self.head = Head(W=rng.normal(size=(v, 4)) * 2, b=rng.normal(size=v),
                         link=link)  # type: ignore[arg-type]

    def hidden_states(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(np.asarray(x, dtype=np.float64) @ self.a)

    def model_logits(self, x: np.ndarray) -> np.ndarray:
        return self.head.logits(self.hidden_states(x))

    def tokenize(self, text: str) -> list[int]:
        return [len(w) % self.head.n_labels for w in text.split()]


@pytest.mark.parametrize("link", ["softmax", "sigmoid"])
@pytest.mark.parametrize("selection_predictions", [10, 10_000])
def test_collect_chooses_labels_and_matches_direct(selection_predictions: int, link: str) -> None:
    model = _Linear(30, link=link)
    x = np.random.default_rng(1).normal(size=(150, 6))
    beh = collect(model, ArrayInputs(x), top_n=6, top_k=4, batch_size=16, progress=False,
                  keep_hidden=50, selection_predictions=selection_predictions)
    lp = model.head.log_probs(model.hidden_states(x))
    if selection_predictions > 150:  # chosen on all the data: the 6 of largest mean p
        assert sorted(beh.idx.tolist()) == sorted(np.argsort(-np.exp(lp).mean(0))[:6].tolist())
    want = _direct(lp, beh.idx, 4)
    for m, w in want.items():
        np.testing.assert_allclose(beh.matrices[m], w, atol=1e-10, err_msg=m)
    assert beh.n_predictions == 150 and beh.hidden.shape == (50, 4)
    np.testing.assert_allclose(beh.tally.sum_p, np.exp(lp).sum(0), rtol=1e-12)
    np.testing.assert_array_equal(beh.tally.argmax_count, np.bincount(lp.argmax(1), minlength=30))
    assert beh.labels == tuple(model.head.labels[i] for i in beh.idx)


def test_collect_small_head_uses_all_labels_and_given_labels() -> None:
    model = _Linear(5)
    x = np.random.default_rng(2).normal(size=(20, 6))
    assert collect(model, ArrayInputs(x), progress=False).idx.tolist() == [0, 1, 2, 3, 4]
    beh = collect(model, ArrayInputs(x), label_set=["3", "#1"], progress=False)
    assert beh.idx.tolist() == [3, 1]
    with pytest.raises(UnembedError, match=r"Unknown label 'zz' \(argument labels\): not among"):
        collect(model, ArrayInputs(x), label_set=["zz", "1"], progress=False)


def test_text_windows_stream_plain_text_and_jsonl(tmp_path) -> None:
    model = _Linear(7)
    txt = tmp_path / "a.txt"
    txt.write_text("one two three four five\n\nsix seven eight nine ten eleven\n")
    src = open_data(txt, model, window=4)
    batches = list(src.batches(2))
    assert [b.shape for b in batches] == [(2, 4)]  # 11 words -> 2 windows of 4
    assert batches[0][0].tolist() == model.tokenize("one two three four")
    jl = tmp_path / "b.jsonl"
    jl.write_text("\n".join(json.dumps({"text": t}) for t in ["a bb ccc", "dddd e ff"]) + "\n")
    ws = TextWindows([jl], model.tokenize, window=3, max_inputs=1)
    assert [b.tolist() for b in ws.batches(8)] == [[model.tokenize("a bb ccc")]]
    desc = ws.describe([2], model)
    assert "window 0, position 2" in desc[2]
    bad = tmp_path / "c.jsonl"
    bad.write_text('{"txt": 1}\n')
    with pytest.raises(UnembedError, match="line 1 has no string field 'text'"):
        list(TextWindows([bad], model.tokenize, window=2).batches(1))
    with pytest.raises(UnembedError, match="no such data file"):
        open_data(tmp_path / "nope.txt", model)


def test_array_inputs_from_npy(tmp_path) -> None:
    x = np.arange(24, dtype=np.float32).reshape(6, 4)
    np.save(tmp_path / "x.npy", x)
    src = ArrayInputs(tmp_path / "x.npy", max_inputs=5)
    assert [b.shape[0] for b in src.batches(2)] == [2, 2, 1]
    named = ArrayInputs(tmp_path / "x.npy", targets=list("abcdef"), name="the digits")
    assert named.describe([1], None) == {1: "row 1 of the digits (true label b)"}
    with pytest.raises(UnembedError, match="must have shape"):
        ArrayInputs(np.zeros(3))


class _WithForward(_Linear):
    """Its own logits come out of its forward pass in float32, as a torch model's do."""

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = self.hidden_states(x)
        return h, self.head.logits(h).astype(np.float32)


def test_collect_with_the_models_own_logits_agrees_with_the_head() -> None:
    model = _WithForward(30)
    x = np.random.default_rng(5).normal(size=(90, 6))
    kw = dict(top_n=5, top_k=3, batch_size=16, progress=False, selection_predictions=40)
    own = collect(model, ArrayInputs(x), logits="model", **kw)
    exact = collect(model, ArrayInputs(x), logits="head", **kw)
    np.testing.assert_array_equal(own.idx, exact.idx)
    for m in own.matrices:
        np.testing.assert_allclose(own.matrices[m], exact.matrices[m], atol=1e-5, err_msg=m)
    with pytest.raises(UnembedError, match="'logits' argument of collect"):
        collect(model, ArrayInputs(x), logits="float16", progress=False)  # type: ignore[arg-type]


@pytest.mark.parametrize("shift", [0.0, 650.0, -650.0])  # 0: exp(z) directly; else exp(z - max)
@pytest.mark.parametrize("link", ["softmax", "sigmoid"])
def test_summarise_float32_logits_equal_their_float64_widening(shift: float, link: str) -> None:
    from unembed.kernels import summarise as _summarise

    z32 = (np.random.default_rng(7).normal(size=(37, 300)) * 4 + shift).astype(np.float32)
    z64 = z32.astype(np.float64)  # exact
    t32, t64 = LabelTally.empty(300), LabelTally.empty(300)
    top32, ln32 = _summarise(z32, link, 4, t32)
    top64, ln64 = _summarise(z64, link, 4, t64)
    assert [sorted(r) for r in top32.tolist()] == [sorted(r) for r in top64.tolist()]
    assert [sorted(r) for r in top32.tolist()] == [
        sorted(r) for r in top_k_indices(z64, 4).tolist()]
    np.testing.assert_array_equal(ln32, ln64)
    np.testing.assert_array_equal(t32.sum_p, t64.sum_p)
    np.testing.assert_array_equal(t32.argmax_count, np.bincount(z64.argmax(1), minlength=300))
    lp = logits_to_log_probs(z64, link)  # type: ignore[arg-type]
    np.testing.assert_allclose(t32.sum_p, np.exp(lp).sum(0), rtol=1e-12)
    if link == "softmax":
        np.testing.assert_allclose(z64[:, :3] - ln32[:, None], lp[:, :3], rtol=1e-13,
                                   atol=1e-12)
