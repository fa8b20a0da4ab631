"""The logit view of wide heads (V < d) from the V x V moments of the centered logits: equal to
np.corrcoef of the centered logits computed directly, streamed and merged like the hidden
states' moments, tied to the head they were accumulated for, and a (d, d) accumulator that
cannot fit refused with what it needed."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from unembed import Head
from unembed._checks import UnembedError
from unembed.gauges import translate
from unembed.moments import (
    HiddenMoments,
    LogitMoments,
    logit_cosines,
    moments_for,
    park_distance,
    stream_moments,
)
from unembed.views import cosine, similarity_matrix

V, D, N = 9, 40, 500


@pytest.fixture
def wide() -> tuple[Head, np.ndarray]:
    rng = np.random.default_rng(11)
    W = rng.standard_normal((V, D)) + 3.0  # a large shared mean row, as in LM heads
    H = rng.standard_normal((N, D)) @ rng.standard_normal((D, D)) / 4 + 1.0
    return Head(W, b=rng.standard_normal(V)), H


def _direct(head: Head, H: np.ndarray) -> np.ndarray:
    z = H @ head.W.T + head.bias  # the logits, formed whole
    return np.corrcoef((z - z.mean(axis=1, keepdims=True)).T)


def test_wide_head_accumulates_the_logits_moments_not_the_hidden_states(wide) -> None:
    head, _ = wide
    assert isinstance(moments_for(head.W, source="x"), LogitMoments)
    assert isinstance(moments_for(head.W[:, :5], source="x"), HiddenMoments)  # V > d
    assert moments_for(head.W, source="x").m2.shape == (V, V)


def test_logit_view_from_logit_moments_equals_corrcoef_of_centered_logits(wide) -> None:
    head, H = wide
    want = _direct(head, H)
    mom = stream_moments((H[s:s + 64] for s in range(0, N, 64)), d=D, source="H",
                         rows=head.W)
    assert isinstance(mom, LogitMoments) and mom.n == N
    np.testing.assert_allclose(similarity_matrix(head, view="logit", data=mom), want,
                               atol=1e-12)
    np.testing.assert_allclose(logit_cosines(head.W, mom), want, atol=1e-12)
    assert cosine(head, 1, 7, "logit", data=mom) == pytest.approx(want[1, 7], abs=1e-12)
    # the same numbers as from the hidden states' (d, d) moments
    hid = HiddenMoments.from_states(H, source="H")
    np.testing.assert_allclose(similarity_matrix(head, view="logit", data=hid),
                               similarity_matrix(head, view="logit", data=mom), atol=1e-12)
    assert park_distance(head.W, mom).distance == pytest.approx(
        park_distance(head.W, hid).distance, abs=1e-10)


def test_logit_moments_merge_across_shards_and_pickle_without_rows(wide) -> None:
    head, H = wide
    a = LogitMoments.of_rows(head.W, source="H").update(H[:123])
    b = pickle.loads(pickle.dumps(LogitMoments.of_rows(head.W, source="H").update(H[123:])))
    assert b.rows is None  # the head's rows are not sent with the shard
    with pytest.raises(UnembedError, match="not updated"):
        b.update(H[:3])
    merged = a.merge(b)
    z = H @ head.W.T
    lz = z - z.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(merged.covariance(), np.cov(lz.T, ddof=0), atol=1e-10)


def test_logit_moments_refuse_another_head_and_accept_a_translated_copy(wide) -> None:
    head, H = wide
    mom = LogitMoments.of_rows(head.W, source="H").update(H)
    moved = translate(head, np.full(D, -2.5))  # same centered rows: same centered logits
    np.testing.assert_allclose(logit_cosines(moved.W, mom), _direct(head, H), atol=1e-12)
    other = Head(head.W[::-1].copy())
    with pytest.raises(UnembedError, match="another head"):
        logit_cosines(other.W, mom)


def test_hidden_moments_too_large_to_fit_are_refused_with_what_they_need() -> None:
    with pytest.raises(UnembedError) as e:
        HiddenMoments(d=10 ** 7)
    msg = str(e.value)
    assert "10000000 x 10000000" in msg and "needs" in msg and "available" in msg
    assert "LogitMoments" in msg and "\n" not in msg


def test_cli_logit_view_of_a_wide_head_equals_corrcoef(tmp_path: Path, wide) -> None:
    head, H = wide
    np.save(tmp_path / "W.npy", head.W)
    np.save(tmp_path / "H.npy", H)
    z = H @ head.W.T
    want = np.corrcoef((z - z.mean(axis=1, keepdims=True)).T)
    r = run_cli("cosine", tmp_path / "W.npy", "#2", "#6", "--view", "logit", "--data",
                tmp_path / "H.npy", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["cosine"]["logit"] == pytest.approx(want[2, 6], abs=1e-12)
    r = run_cli("neighbours", tmp_path / "W.npy", "#3", "-k", "4", "--view", "logit",
                "--data", tmp_path / "H.npy", "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)["neighbours"]["3"]
    order = sorted((j for j in range(V) if j != 3), key=lambda j: (-want[3, j], j))[:4]
    assert [n["label"] for n in got] == [str(j) for j in order]
    np.testing.assert_allclose([n["cosine"] for n in got], want[3, order], atol=1e-12)


class _Identity:
    """A weight-file-like model: the inputs are the head's hidden states."""

    kind = "file"

    def __init__(self, head: Head) -> None:
        self.head = head

    def hidden_states(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)


def test_audit_of_a_wide_head_takes_the_logit_view_from_the_logits_moments(wide) -> None:
    from unembed.audit import audit
    from unembed.behaviour import ArrayInputs
    from unembed.sources.base import HeadModel

    head, H = wide
    model = type("WideModel", (_Identity, HeadModel), {})(head)
    res = audit(model, ArrayInputs(H), progress=False, batch_size=100, co_top=False)
    assert isinstance(res.behaviour.moments, LogitMoments)
    idx = [int(i) for i in res.behaviour.idx]
    np.testing.assert_allclose(res.similarities["logit"], _direct(head, H)[np.ix_(idx, idx)],
                               atol=1e-12)
