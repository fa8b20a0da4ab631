"""The audit end to end on small trained models: every number checked against a direct
recomputation from the model, claim 1's translation checked on its own."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from unembed import UnembedError
from unembed.audit import audit
from unembed.behaviour import ArrayInputs
from unembed.demo.data import digits_split
from unembed.demo.models import logreg_model
from unembed.demo.training import train_digits_logreg
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
    iu = np.triu_indices(10, 1)
    for r in d["rank_correlations"]:
        s = np.asarray(d["similarity"][r["view"]], dtype=float)[iu]
        b = np.asarray(d["behaviour"][r["measure"]], dtype=float)[iu]
        assert r["rho"] == pytest.approx(spearmanr(s, b).statistic, abs=1e-12)


def test_contradictions_are_extreme_rank_gaps(logreg_audit) -> None:
    _, _, res = logreg_audit
    c = [x for x in res.contradictions if x.view == "raw" and x.measure == "mean_min"]
    assert len(c) == 6
    low = [x for x in c if x.kind.startswith("low cosine")]
    gaps = [x.value_rank - x.cosine_rank for x in low]
    assert gaps == sorted(gaps, reverse=True) and gaps[0] > 0


def test_claim_one_translation_checks_out_on_its_own(logreg_audit) -> None:
    model, x, res = logreg_audit
    c1 = res.claims[0]
    assert c1.number == 1 and c1.shown
    h = model.hidden_states(x)
    raw = similarity_matrix(model.head, None, "raw")
    off = raw[~np.eye(10, dtype=bool)]
    assert {c["which"] for c in c1.details["pairs"]} == {"most similar", "least similar"}
    for case in c1.details["pairs"]:
        a, b = case["a"], case["b"]
        want = off.max() if case["which"] == "most similar" else off.min()
        assert cosine(model.head, a, b) == pytest.approx(want, abs=1e-15)
        new = model.head.translate(np.asarray(case["translation"]))
        assert cosine(new, a, b) == pytest.approx(case["target"], abs=1e-9)
        assert np.max(np.abs(new.probs(h) - model.head.probs(h))) < 1e-12
        assert case["equivalence"]["max_abs_dp"] < 1e-12
        # translation-invariant views keep their values
        assert case["views_after"]["centered"] == pytest.approx(case["views_before"]["centered"],
                                                                abs=1e-12)


@pytest.mark.parametrize("number,view", [(2, "centered"), (3, "normalized")])
def test_claims_two_three_cases_are_real(logreg_audit, number: int, view: str) -> None:
    model, x, res = logreg_audit
    cl = res.claims[number - 1]
    assert cl.shown and cl.details["cases"]
    p = model.estimator.predict_proba(x.astype(np.float64))
    sims = similarity_matrix(model.head, None, view)
    lab = list(model.head.labels)
    iu = np.triu_indices(10, 1)
    assert cl.details["threshold"] == pytest.approx(max(0.0, np.quantile(sims[iu], 0.25)))
    for case in cl.details["cases"]:
        i, j = lab.index(case["a"]), lab.index(case["b"])
        assert sims[i, j] <= cl.details["threshold"]
        assert case["cosine"] == pytest.approx(sims[i, j], abs=1e-12)
        w = case["witness"]
        assert p[w, i] == pytest.approx(case["p_a"], abs=1e-12)
        assert p[w, j] == pytest.approx(case["p_b"], abs=1e-12)
        assert min(p[w, i], p[w, j]) >= 0.1
        assert min(p[w, i], p[w, j]) == pytest.approx(np.minimum(p[:, i], p[:, j]).max())


def test_audit_refuses_bad_likely(logreg_audit) -> None:
    model, x, _ = logreg_audit
    with pytest.raises(UnembedError, match="'likely' argument of audit"):
        audit(model, ArrayInputs(x), likely=0.9, progress=False)
