"""The audit end to end on small trained models: every number checked against a direct
recomputation from the model, claim 1's translation checked on its own."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
from scipy.stats import spearmanr

from unembed import UnembedError
from unembed.audit import audit
from unembed.behaviour import ArrayInputs
from unembed.demo.data import digits_split
from unembed.demo.models import logreg_model
from unembed.demo.training import train_digits_logreg
from unembed.gauges import translate
from unembed.sources.base import HeadModel
from unembed.views import VIEWS, cosine, similarity_matrix


@pytest.fixture(scope="module")
def logreg_audit():
    split = digits_split(seed=0)
    est, _ = train_digits_logreg(split, seed=0)
    model = logreg_model(est, split.labels, source="test")
    x = split.x_test[:200]
    res = audit(model, ArrayInputs(x), top_k=3, progress=False, batch_size=64)
    return model, x, res


def test_matrices_match_direct_recomputation(logreg_audit) -> None:
    model, x, res = logreg_audit
    d = res.to_dict()
    assert d["labels"] == list(model.head.labels) and d["data"]["n_predictions"] == 200
    # the probabilities the audit analysed are sklearn's own
    p = model.estimator.predict_proba(x.astype(np.float64))
    np.testing.assert_allclose(np.exp(model.head.log_probs(model.hidden_states(x))), p,
                               atol=1e-12)
    np.testing.assert_allclose(np.asarray(d["behaviour"]["corr_p"]), np.corrcoef(p.T),
                               atol=1e-10)
    mm = np.minimum(p[:, :, None], p[:, None, :]).mean(axis=0)
    np.testing.assert_allclose(np.asarray(d["behaviour"]["mean_min"]), mm, atol=1e-12)
    for v in VIEWS:
        np.testing.assert_allclose(np.asarray(d["similarity"][v], dtype=float),
                                   similarity_matrix(model.head, None, v), atol=1e-12)
    # the logit view: correlation of the centered logits across the inputs, from sklearn's own
    # decision function
    z = model.estimator.decision_function(x.astype(np.float64))
    lc = z - z.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(d["similarity"]["logit"], dtype=float),
                               np.corrcoef(lc.T), atol=1e-9)
    iu = np.triu_indices(10, 1)
    for r in d["rank_correlations"]:
        if r["view"] == "causal":  # V = 10 <= d = 64: equiangular, no statistic
            assert r["rho"] is None and r["p_value"] is None and "rank V - 1 = 9" in r["reason"]
            continue
        s = np.asarray(d["similarity"][r["view"]], dtype=float)[iu]
        b = np.asarray(d["behaviour"][r["measure"]], dtype=float)[iu]
        assert r["rho"] == pytest.approx(spearmanr(s, b).statistic, abs=1e-12)
        assert r["reason"] is None


def test_causal_view_of_a_full_rank_small_head_is_undefined_everywhere(logreg_audit) -> None:
    _, _, res = logreg_audit
    d = res.to_dict()
    assert d["views"]["causal"]["defined"] is False
    assert "-1/(V - 1) = -0.111111" in d["views"]["causal"]["reason"]
    assert not [c for c in res.contradictions if c.view == "causal"]
    for cl in res.claims:
        det = cl.to_dict()["details"]
        for case in det.get("pairs", []):
            assert case["views_before"]["causal"] is None
            assert case["views_after"]["causal"] is None
        for case in det.get("cases", []):
            assert case["cosines"]["causal"] is None
    # every other view is defined
    assert set(res.undefined_views) == {"causal"} and not res.undefined_measures


def test_contradictions_are_the_off_quadrants(logreg_audit) -> None:
    model, _, res = logreg_audit
    from scipy.stats import rankdata

    iu = np.triu_indices(10, 1)
    s = similarity_matrix(model.head, None, "raw")[iu]
    b = res.behaviour.matrices["mean_min"][iu]
    rs, rb = (rankdata(s) - 1) / (s.size - 1), (rankdata(b) - 1) / (b.size - 1)
    lab = list(model.head.labels)
    for kind, want in (("low", (rs <= 0.25) & (rb >= 0.75)), ("high", (rs >= 0.75) & (rb <= 0.25))):
        c = [x for x in res.contradictions
             if x.view == "raw" and x.measure == "mean_min" and x.kind == kind]
        got = {(lab.index(x.a), lab.index(x.b)) for x in c}
        assert got == {(int(iu[0][q]), int(iu[1][q])) for q in np.flatnonzero(want)}
        gaps = [abs(x.value_rank - x.cosine_rank) for x in c]
        assert gaps == sorted(gaps, reverse=True)
        if kind == "high":  # "high" is a percentile, and the page says so
            assert all(x.cosine_rank >= 0.75 for x in c)


def test_claim_one_translation_checks_out_on_its_own(logreg_audit) -> None:
    model, x, res = logreg_audit
    c1 = res.claims[0]
    assert c1.number == 1 and c1.shown and c1.outcome == "shown"
    h = model.hidden_states(x)
    raw = similarity_matrix(model.head, None, "raw")
    off = raw[~np.eye(10, dtype=bool)]
    assert {c.which for c in c1.details.pairs} == {"most similar", "least similar"}
    for case in (asdict(c) for c in c1.details.pairs):
        a, b = case["a"], case["b"]
        want = off.max() if case["which"] == "most similar" else off.min()
        assert cosine(model.head, a, b, "raw") == pytest.approx(want, abs=1e-15)
        new = translate(model.head, np.asarray(case["translation"]))
        assert cosine(new, a, b, "raw") == pytest.approx(case["target"], abs=1e-9)
        assert np.max(np.abs(new.probs(h) - model.head.probs(h))) < 1e-12
        assert case["equivalence"]["max_abs_dp"] < 1e-12
        # translation-invariant views keep their values
        assert case["views_after"]["centered"] == pytest.approx(case["views_before"]["centered"],
                                                                abs=1e-12)
        assert case["views_after"]["logit"] == pytest.approx(case["views_before"]["logit"],
                                                             abs=1e-12)
        # the random states are not saturated, and the translated head agrees there too
        rs = case["random_states"]
        g = np.random.default_rng([0, 0xC1A1]).standard_normal((rs["n"], 64)) / 8.0
        hr = g * rs["scale"]
        pr = model.head.probs(hr)
        assert 0.2 < np.median(pr.max(axis=1)) < 0.8
        assert np.max(np.abs(new.probs(hr) - pr)) < 1e-12


@pytest.mark.parametrize("number,view", [(2, "centered"), (3, "normalized")])
def test_claims_two_three_cases_are_real(logreg_audit, number: int, view: str) -> None:
    model, x, res = logreg_audit
    cl = res.claims[number - 1]
    d = cl.details
    assert cl.outcome == "shown" and d.cases
    p = model.estimator.predict_proba(x.astype(np.float64))
    sims = similarity_matrix(model.head, None, view)
    lab = list(model.head.labels)
    # every negative pair likely together on one input, and nothing else, most negative first
    want = {(i, j) for i in range(10) for j in range(i + 1, 10)
            if sims[i, j] < 0 and np.minimum(p[:, i], p[:, j]).max() >= 0.1}
    got = [(lab.index(c.a), lab.index(c.b)) for c in d.cases]
    assert set(got) == want and len(got) == len(want)
    assert [c.cosine for c in d.cases] == sorted(c.cosine for c in d.cases)
    assert d.pairs_negative == int(np.sum(sims[np.triu_indices(10, 1)] < 0))
    for case in d.cases:
        i, j = lab.index(case.a), lab.index(case.b)
        assert case.cosine == pytest.approx(sims[i, j], abs=1e-12) and case.cosine < 0
        w = case.witness
        assert p[w, i] == pytest.approx(case.p_a, abs=1e-12)
        assert p[w, j] == pytest.approx(case.p_b, abs=1e-12)
        assert min(p[w, i], p[w, j]) == pytest.approx(np.minimum(p[:, i], p[:, j]).max())
    # the model's own evidence: every negative pair decided, each "yes" with probabilities
    # recomputed here from the head at a hidden state
    assert len(d.model_evidence) == d.pairs_negative
    for e in d.model_evidence:
        assert e.cosine < 0
        if e.status == "yes" and e.p_a is not None:
            z = np.asarray(e.hidden_state) @ model.estimator.coef_.T + model.estimator.intercept_
            q = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
            i, j = lab.index(e.a), lab.index(e.b)
            assert q[i] == pytest.approx(e.p_a, abs=1e-9) and q[j] == pytest.approx(e.p_b, abs=1e-9)
            assert abs(q[i] - q[j]) < 1e-6 and min(q[i], q[j]) > 0.45


def test_audit_refuses_bad_likely(logreg_audit) -> None:
    model, x, _ = logreg_audit
    with pytest.raises(UnembedError, match="'likely' argument of audit"):
        audit(model, ArrayInputs(x), likely=0.9, progress=False)


class _Planted(HeadModel):
    """Label 'mid' is the midpoint of 'a' and 'b': a and b can never be the top two."""

    kind = "test"

    def __init__(self) -> None:
        from unembed.head import Head

        self.head = Head(W=np.array([[2.0, 1.0], [-2.0, 1.0], [0.0, 1.0], [0.0, -1.0],
                                     [1.0, -2.0]]), labels=("a", "b", "mid", "d", "e"))

    def hidden_states(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)

    def model_logits(self, x: np.ndarray) -> np.ndarray:
        return self.head.logits(x)


def test_audit_reports_pairs_that_cannot_be_top_two() -> None:
    model = _Planted()
    x = np.random.default_rng(0).normal(size=(200, 2)) * 3
    res = audit(model, ArrayInputs(x), progress=False)
    ct = res.to_dict()["co_top"]
    lab = ct["labels"]
    i, j = lab.index("a"), lab.index("b")
    assert ct["feasible"][i][j] is False
    # every "yes" comes with a witness at which the pair really is the top two
    for (p, q), r in res.co_top.results.items():
        if r.feasible:
            z = model.head.logits(r.witness)[0]
            top2 = set(np.argsort(-z)[:2].tolist())
            assert top2 == {res.behaviour.idx[p], res.behaviour.idx[q]}
    # and on the data they never are the top two either
    z = model.head.logits(x)
    both = (np.argsort(-z, axis=1)[:, :2] == 0).any(1) & (np.argsort(-z, axis=1)[:, :2] == 1).any(1)
    assert not both.any()
