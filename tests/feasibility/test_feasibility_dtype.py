"""The feasibility LPs' default tolerance follows the head's storage dtype: rows of a float16
head planted inside the hull of others (then rounded to float16) are "no", as they are before
rounding, where rtol = 1e-6 (float32's) calls some of them argmaxable; the tolerance used and
where it came from are in every result and in the JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from conftest import run_cli
from unembed import Head
from unembed._tolerance import tolerance
from unembed.feasibility import argmaxable_all, is_argmaxable

PLANTED = [0, 5, 10, 15]


def _float16_head() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    W = rng.standard_normal((40, 8))
    for p in PLANTED:  # convex combinations of three others: never the strict argmax
        W[p] = rng.dirichlet(np.ones(3)) @ W[[p + 1, p + 2, p + 3]]
    return W, W.astype(np.float16)


def test_float16_planted_hull_points_are_no_under_the_dtype_tolerance(tmp_path: Path) -> None:
    W, W16 = _float16_head()
    exact = argmaxable_all(Head(W), workers=1)  # float64, before rounding: the truth
    assert set(PLANTED) <= {int(x) for x in exact.unargmaxable}
    head = Head(W16)
    assert head.dtype == "float16"
    loose = argmaxable_all(head, workers=1, rtol=1e-6)
    assert {"5", "15"} <= set(loose.labels[i] for i in np.flatnonzero(loose.status == "yes"))
    res = argmaxable_all(head, workers=1)
    assert res.to_dict()["rtol"] == {"value": tolerance("float16").lp_rtol,
                                     "from": "default for storage dtype float16"}
    for p in PLANTED:
        assert res.status[p] == "no"
        cert = res.lp_results[p].certificate
        assert cert is not None and cert.bound <= res.tol
    # labels that stick out by more than the rounding stay argmaxable, each with a witness
    far = [i for i in range(40) if exact.status[i] == "yes" and exact.margin[i] > 10 * res.tol]
    assert far and all(res.status[i] == "yes" for i in far)
    one = is_argmaxable(head, 5)
    assert one.status == "no" and one.rtol.source == "default for storage dtype float16"
    np.save(tmp_path / "W16.npy", W16)
    r = run_cli("argmaxable", str(tmp_path / "W16.npy"), "--json", "--workers", "1")
    got = json.loads(r.stdout)
    assert got["rtol"]["value"] == tolerance("float16").lp_rtol
    assert set(map(str, PLANTED)) <= set(got["unargmaxable"])
