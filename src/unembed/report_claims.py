"""The paper's three claims as report sections (HTML): claim 1's equivalent heads, claims 2
and 3's negative-cosine pairs with the data's and the model's evidence, and which pairs can be
the top two together."""

from __future__ import annotations

import numpy as np

from unembed.audit import SATURATED, AuditResult, Claim, ClaimOneDetails, PairClaimDetails
from unembed.plots import plot_before_after
from unembed.report_html import Cell, Header, esc, img, num, pair_text, shown_of, table

__all__ = ["claim_html", "co_top_html", "mark"]


def mark(cl: Claim) -> str:
    """A claim's verdict in words (:attr:`Claim.verdict_line`), coloured by its outcome."""
    cls = {"shown": "ok", "not shown": "no", "not testable": "nt"}[cl.outcome]
    return f"<span class='{cls}'>{esc(cl.verdict_line)}</span>"


#: Rows of a table in the page; the JSON keeps every row.
TABLE_ROWS = 8


_DP = ("max |dp|", "the largest change of any label's probability between the original and "
       "the translated head, over the inputs compared")


def _claim_one_html(d: ClaimOneDetails) -> list[str]:
    rows: list[list[Cell]] = []
    out = []
    for c in d.pairs:
        if c.refused is not None:
            rows.append([esc(c.which), esc(pair_text(c.a, c.b)), c.cosine_before, c.target,
                         "refused: " + esc(c.refused), None, None, ""])
            continue
        eq = c.equivalence
        rs = c.random_states
        rows.append([esc(c.which), esc(pair_text(c.a, c.b)), c.cosine_before, c.target,
                     c.cosine_after, None if eq is None else eq.max_abs_dp,
                     None if rs is None else rs.max_abs_dp,
                     esc(c.verdict.split(":")[0].lower())])
    out.append(table(
        ["pair", "labels", "raw cosine before", ("target", "the raw cosine the translation aims "
                                                 "for"), "raw cosine after",
         (f"{_DP[0]} on data", _DP[1] + ": the audit data's hidden states"),
         (f"{_DP[0]} on random states", _DP[1] + ": random hidden states (below)"),
         ("verdict on the data", "equivalent: the two heads give the same probabilities on "
                                 "the data to float64 rounding")],
        rows, left=2, digits={2: 6, 3: 3, 4: 12}, fold=True))
    rs0 = next((c.random_states for c in d.pairs if c.random_states is not None), None)
    sat = (f" The softmax is saturated on the data: {100 * d.saturated_share:.0f}% of the inputs "
           f"have a largest probability within {SATURATED:g} of 1, where any head that keeps "
           f"the argmax gives max |dp| near 0; the random states are the evidence."
           if d.saturated else
           f" {100 * d.saturated_share:.0f}% of the data's inputs are saturated (largest "
           f"probability within {SATURATED:g} of 1).")
    rnd = ("" if rs0 is None else
           f" Random states: {rs0.n} hidden states N(0, I)/sqrt(d) scaled by "
           f"{num(rs0.scale)}, where the median largest probability is {num(rs0.median_max_p)} "
           f"({100 * rs0.saturated_share:.0f}% saturated).")
    out.append(f"<p class='small'>Verified on {d.verified_on} hidden states of the audit data "
               f"(all labels compared). max |dp|: the largest change of any probability. "
               f"{esc(sat)}{esc(rnd)} Translation-invariant views keep their values; see the "
               f"bars (left: each view's cosine of the pair before and after; right: the two "
               f"labels' probabilities under both heads, on the diagonal when equal).</p>")
    for c in d.pairs:
        if c.refused is None:
            out.append(img(plot_before_after(c), f"before/after: {pair_text(c.a, c.b)}"))
    return out


def _margin_unit(region_kind: str) -> str:
    """The scale of a top-two margin: logits, or logits at the unit box when the region is
    all of R^d (the LP's unit form)."""
    return "logits" if region_kind != "any" else "logits at |h|_inf = 1"


def _pair_claim_html(d: PairClaimDetails, undefined: dict[str, str],
                     region_kind: str = "data") -> list[str]:
    out = [f"<p>{d.pairs_negative} of {d.pairs_total} pairs have a negative {esc(d.view)} "
           f"cosine; {len(d.cases)} of them have an input where both labels have p &ge; "
           f"{num(d.likely)} ({d.pairs_likely_together} pairs of any cosine do; the largest "
           f"min(p_a, p_b) on one input is {num(d.largest_min_probability)}).</p>"]
    if d.cases:
        rows: list[list[Cell]] = [
            [esc(pair_text(c.a, c.b)), c.cosine, f"{100 * c.percentile:.0f}%", c.z, c.p_a, c.p_b,
             c.measures["co_topk"], c.measures["corr_p"],
             esc(c.witness_text) or str(c.witness)] for c in d.cases[:TABLE_ROWS]]
        out.append(f"<p>The data's evidence, most negative cosine first. How strong: "
                   f"{esc(d.grade_reason)}. The witness input is the input where min(p_a, p_b) "
                   f"is largest; p_a, p_b the two labels' probabilities there.</p>")
        out.append(table(
            ["labels", f"{d.view} cosine",
             ("percentile among the pairs", "the share of the label set's pairs with a lower "
                                            "cosine"),
             ("z-score", "(cosine - mean) / standard deviation over the label set's pairs"),
             "p_a at witness", "p_b at witness",
             ("freq. both in top k", "the share of the data's predictions where both labels "
                                     "are among the k most probable"),
             ("corr(p_a, p_b)", "Pearson correlation of the two probabilities over the data"),
             ("witness input", "the input (its number, or its text) where min(p_a, p_b) is "
                               "largest")],
            rows, left=1, digits={3: 2}, fold=True))
        out.append(shown_of(min(TABLE_ROWS, len(d.cases)), len(d.cases), "pairs"))
    if d.model_evidence:
        ev = d.model_evidence
        n_yes = sum(e.status == "yes" for e in ev)
        n_no = sum(e.status == "no" for e in ev)
        unit = _margin_unit(region_kind)
        out.append(f"<p>The model's own evidence, no data needed ({esc(d.model_evidence_note)}): "
                   f"{n_yes} of {len(ev)} negative-cosine pairs can be the top two labels "
                   f"together (a witness hidden state in the region; along it p_a = p_b, "
                   f"kept in the region), {n_no} cannot there (a linear-programming "
                   f"certificate), {len(ev) - n_yes - n_no} undecided. Margin: the smallest "
                   f"gap, in {unit}, between the pair's logits and any other label's at the "
                   f"best hidden state (above 0: they can be the top two). Witness norm: the "
                   f"Euclidean norm of that hidden state; the largest norm of a hidden state "
                   f"of the data is {num(d.data_max_norm)}.</p>")
        same = all((e.p_a is None and e.p_b is None) or (
            e.p_a is not None and e.p_b is not None and abs(e.p_a - e.p_b) <= 1e-9)
            for e in ev[:TABLE_ROWS])  # equal along the witness, up to rounding
        ev_rows: list[list[Cell]] = []
        for e in ev[:TABLE_ROWS]:
            ps_cells: list[Cell] = [e.p_a] if same else [e.p_a, e.p_b]
            ev_rows.append([esc(pair_text(e.a, e.b)), e.cosine, esc(e.status), e.margin,
                            e.witness_norm, *ps_cells])
        ps: list[Header] = (["p_a = p_b at witness"] if same
                            else ["p_a at witness", "p_b at witness"])
        out.append(table(["labels", f"{d.view} cosine", "can be the top two",
                           (f"margin ({unit})", "the smallest gap between the pair's logits "
                                                "and any other label's at the best hidden "
                                                "state of the region"),
                           ("witness norm", "Euclidean norm of the witness hidden state"),
                           *ps], ev_rows, left=1, fold=True))
        out.append(shown_of(min(TABLE_ROWS, len(ev)), len(ev), "pairs"))
    return out


def claim_html(cl: Claim, undefined: dict[str, str], region_kind: str = "data") -> str:
    out = [f"<h3>Claim {cl.number}: {esc(cl.title)} — {mark(cl)}</h3>",
           f"<p>{esc(cl.statement)}</p>", f"<p><b>{esc(cl.outcome)}</b>: {esc(cl.why)}</p>"]
    if isinstance(cl.details, ClaimOneDetails):
        out += _claim_one_html(cl.details)
    else:
        out += _pair_claim_html(cl.details, undefined, region_kind)
    return "\n".join(out)


def co_top_html(res: AuditResult) -> str:
    ct = res.co_top
    feas = np.asarray(ct.feasible, dtype=bool)
    k = feas.shape[0]
    iu = np.triu_indices(k, 1)
    n_yes = int(feas[iu].sum())
    out = ["<h2>Which pairs can be the top two together (the arrangement of all rows)</h2>",
           f"<p>{n_yes} of {iu[0].size} pairs of the label set can be the two most probable "
           f"labels together for some hidden state within {esc(res.region.text)} (decided over "
           f"all {res.model['n_labels']} "
           f"rows: a witness hidden state for each yes, a linear-programming certificate for "
           f"each no). Cosine does not decide this; a third label between two others can block "
           f"them.</p>"]
    no = [(int(i), int(j)) for i, j in zip(*iu) if not feas[i, j]]
    if no:
        cen = res.similarities["centered"]
        raw = res.similarities["raw"]
        unit = _margin_unit(res.region.kind)
        rows: list[list[Cell]] = [
            [esc(pair_text(ct.labels[i], ct.labels[j])), float(raw[i, j]), float(cen[i, j]),
             float(ct.margin[i][j]), esc(ct.results[(i, j)].status)] for i, j in no[:30]]
        out.append(table(["pair that can never be the top two", "raw cosine",
                           "centered cosine",
                           (f"margin ({unit})", "the largest, over hidden states of the "
                                                "region, of the smallest gap between the "
                                                "pair's logits and any other label's (at most "
                                                "0: never the top two)"),
                           ("status", "no: proven by a linear-programming certificate")],
                          rows, left=1, fold=True))
        out.append(shown_of(min(30, len(no)), len(no), "pairs"))
    return "\n".join(out)


