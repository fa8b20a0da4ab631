"""The audit's advice: which views are ranked (only those invariant under every symmetry of the
head), the statistics behind a ranking (label-permutation p-values, a label bootstrap of the
difference of rhos, pairs carrying a measure), and that two equivalent models get the same
advice and the same claim outcomes. Checked against independent formulations: explicit
enumerations of label permutations, scipy's permutation test, an explicit bootstrap loop."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
from scipy.stats import permutation_test, spearmanr

from unembed._stats import (
    BOOTSTRAP_MAX_LABELS,
    carrying,
    label_bootstrap,
    label_permutation_test,
)
from unembed.advice import MIN_CARRYING_PAIRS, advise, rank_correlations
from unembed.audit import audit
from unembed.behaviour import ArrayInputs
from unembed.demo.data import digits_split
from unembed.demo.models import logreg_model
from unembed.demo.training import train_digits_logreg
from unembed.head import Head
from unembed.pair_claims import PairCase, grade_case
from unembed.report import render_html, summary_lines
from unembed.sources.base import HeadModel
from unembed.views import similarity_matrix


def _sym(rng: np.random.Generator, k: int) -> np.ndarray:
    a = rng.normal(size=(k, k))
    return (a + a.T) / 2


def _pairs(S: np.ndarray) -> np.ndarray:
    return S[np.triu_indices(S.shape[0], 1)]


# ---------------------------------------------------------------------------- p-values
@pytest.mark.parametrize("k", [4, 5, 6])
def test_exact_p_value_is_the_share_of_all_label_permutations(k: int) -> None:
    rng = np.random.default_rng(k)
    S, M = _sym(rng, k), _sym(rng, k)
    M += 0.8 * S  # some association
    rho = spearmanr(_pairs(S), _pairs(M)).statistic
    count = 0
    perms = list(itertools.permutations(range(k)))
    for p in perms:
        q = list(p)
        r = spearmanr(_pairs(S[np.ix_(q, q)]), _pairs(M)).statistic
        count += abs(r) >= abs(rho) - 1e-12
    t = label_permutation_test(S, M, rho)
    assert t.exact and t.n_permutations == len(perms)
    assert t.p_value == pytest.approx(count / len(perms), abs=1e-15)
    assert "exact: all" in t.method


def test_three_labels_give_the_pairs_permutation_p_of_scipy_never_zero() -> None:
    """With 3 labels the label permutations are all permutations of the 3 pairs: the p-value
    is scipy's exact permutation test over pairings, 1/3 for rho = -1 (not 0.0)."""
    S = np.array([[1.0, 0.9, 0.1], [0.9, 1.0, 0.5], [0.1, 0.5, 1.0]])
    M = np.array([[0.0, 0.1, 0.8], [0.1, 0.0, 0.4], [0.8, 0.4, 0.0]])
    x, y = _pairs(S), _pairs(M)
    ref = permutation_test((x, y), lambda a, b: spearmanr(a, b).statistic,
                           permutation_type="pairings", alternative="two-sided")
    t = label_permutation_test(S, M, spearmanr(x, y).statistic)
    assert t.p_value == pytest.approx(ref.pvalue, abs=1e-12) == pytest.approx(1 / 3)


def test_monte_carlo_p_value_has_its_floor_and_counts_permutations() -> None:
    rng = np.random.default_rng(1)
    k = 12
    S = _sym(rng, k)
    t = label_permutation_test(S, S, 1.0)  # nothing beats a perfect correlation
    assert not t.exact and t.p_value == pytest.approx(1 / (1 + t.n_permutations))
    assert t.p_value > 0 and "Monte Carlo" in t.method
    # against an explicit count over the same seeded permutations
    M = S + 2.0 * _sym(rng, k)
    rho = spearmanr(_pairs(S), _pairs(M)).statistic
    t = label_permutation_test(S, M, rho)
    from unembed._stats import _label_permutations

    perms, exact = _label_permutations(k)
    count = sum(abs(spearmanr(_pairs(S[np.ix_(p, p)]), _pairs(M)).statistic) >= abs(rho) - 1e-12
                for p in perms[:500])
    t500 = (1 + count) / 501
    assert not exact and abs(t.p_value - t500) < 0.1  # same estimate, fewer permutations


# ---------------------------------------------------------------------------- bootstrap
def test_label_bootstrap_equals_an_explicit_resampling_loop() -> None:
    rng = np.random.default_rng(2)
    k = 9
    M = _sym(rng, k)
    views = {"a": M + 0.5 * _sym(rng, k), "b": _sym(rng, k)}
    bs = label_bootstrap(views, M, n_resamples=60, seed=0)
    draw = min(k, BOOTSTRAP_MAX_LABELS)
    g = np.random.default_rng([0, k, draw])
    want = []
    for _ in range(60):
        s = g.integers(0, k, size=draw)
        pairs = [(s[i], s[j]) for i, j in itertools.combinations(range(draw), 2) if s[i] != s[j]]
        y = [M[a, b] for a, b in pairs]
        row = [spearmanr([v[a, b] for a, b in pairs], y).statistic for v in views.values()]
        want.append(row)
    np.testing.assert_allclose(bs.rhos, np.array(want), atol=1e-12)
    lo, hi, n = bs.difference("a", "b")
    d = np.array(want)[:, 0] - np.array(want)[:, 1]
    assert n == 60 and (lo, hi) == pytest.approx(tuple(np.quantile(d, [0.025, 0.975])))


def _head(V: int = 40, d: int = 8, seed: int = 0) -> Head:
    return Head(np.random.default_rng(seed).normal(size=(V, d)))


def test_identical_views_are_a_tie_and_a_clear_winner_is_best() -> None:
    head = _head()
    k = head.n_labels
    rng = np.random.default_rng(3)
    M = _sym(rng, k)
    sims = {"centered": M.copy(), "normalized": M.copy(), "causal": _sym(rng, k)}
    corr = rank_correlations(sims, {"m": M})
    adv = advise(head, sims, {"m": M}, corr, {}, n_resamples=200)
    ma = adv.measures["m"]
    assert ma.best is None and set(ma.tied) == {"centered", "normalized"}
    d = next(x for x in ma.differences if x.other in ma.tied)
    assert d.difference == 0 and d.ci_low <= 0 <= d.ci_high
    assert ma.ranked[-1] == "causal"  # listed below the tie, not part of it
    sims = {"centered": M.copy(), "causal": _sym(rng, k)}
    adv = advise(head, sims, {"m": M}, rank_correlations(sims, {"m": M}), {}, n_resamples=200)
    ma = adv.measures["m"]
    assert ma.best == "centered" and ma.differences[0].ci_low > 0 and not ma.tied


def test_measure_carried_by_few_pairs_gets_rho_but_no_ranking() -> None:
    """770 of 780 pairs share one value: rho exists, a ranking does not."""
    head = _head()
    k = head.n_labels
    iu = np.triu_indices(k, 1)
    vals = np.zeros(iu[0].size)
    vals[:10] = np.arange(1.0, 11.0)
    M = np.zeros((k, k))
    M[iu] = vals
    M = M + M.T
    c = carrying(M[iu])
    assert (c.n_pairs, c.n_carrying, c.modal_value) == (780, 10, 0.0)
    sims = {v: similarity_matrix(head, None, v) for v in ("raw", "centered", "normalized")}
    corr = rank_correlations(sims, {"m": M})
    assert all(r.rho is not None and r.n_pairs == 780 for r in corr)
    ma = advise(head, sims, {"m": M}, corr, {}).measures["m"]
    assert ma.ranked == () and ma.best is None
    assert ma.refused is not None and "10 of 780 pairs (1.3%) carry the measure" in ma.refused
    assert MIN_CARRYING_PAIRS == 10


def test_views_moved_by_a_symmetry_of_the_head_are_not_ranked() -> None:
    head = _head()
    M = _sym(np.random.default_rng(4), head.n_labels)
    sims = {v: similarity_matrix(head, None, v) for v in ("raw", "centered", "causal")}
    adv = advise(head, sims, {"m": M}, rank_correlations(sims, {"m": M}), {}, n_resamples=50)
    assert "raw" not in adv.measures["m"].ranked and "translation" in adv.not_ranked["raw"]
    # a bare weight matrix: reparametrisation unknown, said as a caveat naming the views
    assert any("reparametrisation is unknown" in c and "centered" in c for c in adv.caveats)
    capped = Head(head.W, softcap=5.0)  # no translation symmetry: raw is identified
    adv = advise(capped, sims, {"m": M}, rank_correlations(sims, {"m": M}), {}, n_resamples=50)
    assert "raw" in adv.measures["m"].ranked and "raw" not in adv.not_ranked


# ---------------------------------------------------------------------------- claims 2 and 3
def test_claim_grades_follow_the_stated_rule() -> None:
    def case(cos: float, q: float) -> PairCase:
        return PairCase("a", "b", cos, {}, {}, 0, 0.3, 0.3, percentile=q, z=-1.0)

    assert grade_case(case(-0.066, 0.05))[0] == "weak"  # essentially orthogonal
    assert grade_case(case(-0.5, 0.40))[0] == "weak"  # above the lower quartile
    assert grade_case(case(-0.5, 0.20))[0] == "moderate"
    assert grade_case(case(-0.5, 0.05))[0] == "strong"


# ---------------------------------------------------------------------------- equivalent models
@pytest.fixture(scope="module")
def logreg_pair():
    split = digits_split(seed=0)
    est, _ = train_digits_logreg(split, seed=0)
    moved = copy.deepcopy(est)
    rng = np.random.default_rng(7)
    c = 3.0 * rng.normal(size=est.coef_.shape[1])
    moved.coef_ = est.coef_ + c[None, :]  # u_i + c for every row: a translation
    moved.intercept_ = est.intercept_ + 2.5  # b_i + beta: a bias shift
    x = split.x_test[:200].astype(np.float64)
    # verified equivalent on the data by the estimators' own probabilities
    np.testing.assert_allclose(moved.predict_proba(x), est.predict_proba(x), atol=1e-12)
    kw = {"top_k": 3, "progress": False, "batch_size": 64, "describe": False}
    a = audit(logreg_model(est, split.labels, source="a"), ArrayInputs(x), **kw)
    b = audit(logreg_model(moved, split.labels, source="b"), ArrayInputs(x), **kw)
    return a, b


def _advice_facts(res):
    return {me: (ma.ranked, ma.best, ma.tied, ma.refused is not None)
            for me, ma in res.advice.measures.items()}


def test_translated_copy_gets_identical_advice_and_claim_outcomes(logreg_pair) -> None:
    a, b = logreg_pair
    # the raw view moves (the defect: it was ranked, and its rho changes with the copy) ...
    ra = {r.measure: r.rho for r in a.correlations if r.view == "raw"}
    rb = {r.measure: r.rho for r in b.correlations if r.view == "raw"}
    assert max(abs(ra[m] - rb[m]) for m in ra) > 0.05
    # ... so it is not ranked, and the advice is the same for both
    assert "raw" in a.advice.not_ranked and "raw" in b.advice.not_ranked
    assert a.to_dict()["views_ranked"] == b.to_dict()["views_ranked"]
    assert _advice_facts(a) == _advice_facts(b)
    assert a.advice.not_ranked.keys() == b.advice.not_ranked.keys()
    assert [(c.outcome, c.grade, c.verdict_line) for c in a.claims] == \
        [(c.outcome, c.grade, c.verdict_line) for c in b.claims]
    for ca, cb in zip(a.claims[1:], b.claims[1:]):
        assert [(e.a, e.b, e.status) for e in ca.details.model_evidence] == \
            [(e.a, e.b, e.status) for e in cb.details.model_evidence]


class _Reparam(HeadModel):
    """h = L tanh(x A): the hidden state leaves a Linear L, which can absorb any invertible
    map (reparametrisation is a symmetry). 12 labels over d = 4, so the causal view is
    defined (centered rows of rank 4 < V - 1)."""

    kind = "test"

    def __init__(self, M: np.ndarray | None = None) -> None:
        rng = np.random.default_rng(11)
        self.a = rng.normal(size=(6, 4))
        L = np.eye(4) + 0.3 * rng.normal(size=(4, 4))
        W = rng.normal(size=(12, 4)) * 1.5
        if M is not None:  # L -> M L, W -> W M^-1: the same logits
            L, W = M @ L, W @ np.linalg.inv(M)
        self.L = L
        self.head = Head(W=W, b=np.linspace(-0.5, 0.5, 12), labels=[f"l{i}" for i in range(12)],
                         reparam=True)

    def hidden_states(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(np.asarray(x, dtype=np.float64) @ self.a) @ self.L.T

    def model_logits(self, x: np.ndarray) -> np.ndarray:
        return self.head.logits(self.hidden_states(x))


def test_reparametrised_copy_gets_identical_advice() -> None:
    x = np.random.default_rng(5).normal(size=(300, 6))
    M = np.array([[3.0, 1.0, 0.0, 0.5], [0.0, 0.5, 0.2, 0.0], [1.0, 0.0, 2.0, 0.0],
                  [0.0, -1.0, 0.0, 1.0]])
    one, two = _Reparam(), _Reparam(M)
    np.testing.assert_allclose(two.head.probs(two.hidden_states(x)),
                               one.head.probs(one.hidden_states(x)), atol=1e-12)
    a = audit(one, ArrayInputs(x), progress=False, describe=False, likely=0.05)
    b = audit(two, ArrayInputs(x), progress=False, describe=False, likely=0.05)
    for res in (a, b):
        for v in ("raw", "centered", "normalized", "differences"):
            assert "reparametrisation" in res.advice.not_ranked[v]
        assert all(set(ma.ranked) <= {"causal", "logit"}
                   for ma in res.advice.measures.values())
    assert _advice_facts(a) == _advice_facts(b)
    assert a.claims[0].outcome == b.claims[0].outcome == "shown"


# ---------------------------------------------------------------------------- in the reports
def test_three_label_audit_has_no_zero_p_and_no_ranking(logreg_pair, tmp_path) -> None:
    split = digits_split(seed=0)
    est, _ = train_digits_logreg(split, seed=0)
    x = split.x_test[:200].astype(np.float64)
    res = audit(logreg_model(est, split.labels, source="a"), ArrayInputs(x), progress=False,
                label_set=list(split.labels[:3]), describe=False)
    d = res.to_dict()
    assert all(r["p_value"] is None or r["p_value"] >= 1 / 6 for r in d["rank_correlations"])
    assert all(v == [] for v in d["views_ranked"].values())
    assert all(m["refused"] for m in d["advice"]["measures"].values())
    lines = summary_lines(res)
    assert any("(n = 3 pairs" in line for line in lines)
    assert any(line.startswith("  use for") and "no ranking" in line for line in lines)
    page = render_html(res)
    assert "In every cell: n = 3 pairs" in page and "p = " in page and "no ranking" in page


def test_reports_print_n_and_verdicts(logreg_pair) -> None:
    a, _ = logreg_pair
    lines = summary_lines(a)
    assert any("(n = 45 pairs, " in line for line in lines)
    assert any("not ranked: raw: not invariant under translation" in line for line in lines)
    c2 = a.claims[1]
    assert c2.outcome == "shown" and c2.grade in ("strong", "moderate", "weak")
    assert any(line.startswith(f"  claim 2 shown ({c2.grade} evidence)") for line in lines)
    page = render_html(a)
    assert "What to use for this model" in page and "Not ranked" in page
    assert "In every cell: n = 45 pairs" in page and "p = " in page
    # the percentile of the strongest case, recomputed from the head
    s = a.similarities["centered"][np.triu_indices(10, 1)]
    case = c2.details.cases[0]
    assert case.percentile == pytest.approx(np.mean(s <= case.cosine))


def test_model_evidence_stays_within_the_data_region(logreg_pair) -> None:
    a, _ = logreg_pair
    split = digits_split(seed=0)
    h = split.x_test[:200].astype(np.float64)  # the logistic regression's hidden states
    box = np.abs(h).max(axis=0)
    n_yes = 0
    for cl in a.claims[1:]:
        assert "the box the data occupy" in cl.details.model_evidence_note
        for e in cl.details.model_evidence:
            if e.hidden_state is not None:
                n_yes += 1
                hs = np.asarray(e.hidden_state)
                assert np.all(np.abs(hs) <= np.maximum(box, 1e-9 * box.max()) * (1 + 1e-6))
                assert e.witness_norm == pytest.approx(np.linalg.norm(hs))
        assert cl.details.data_max_norm == pytest.approx(np.linalg.norm(h, axis=1).max())
    assert n_yes > 0
    assert a.to_dict()["witness_region"]["kind"] == "data"
