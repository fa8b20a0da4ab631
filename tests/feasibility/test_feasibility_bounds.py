"""Feasibility under the bound the architecture puts on h (``radius="architecture"``) and
per-coordinate boxes: the recorded box contains the model's real hidden states, witnesses lie
in it, "no" comes with a certificate, heads without a bound are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import unembed
from unembed import Head, UnembedError
from unembed.feasibility import argmaxable_all, is_argmaxable, is_feasible_ranking
from unembed.gauges import reparametrize, translate

FAMILIES = ["llama", "gpt2", "gemma2"]


def _expected_radii(lm: object, fold: bool) -> np.ndarray:
    """|g| c + |beta| from the torch module itself (not from the source's FinalNorm)."""
    mod = lm.model.get_submodule(lm.norm.name)  # type: ignore[attr-defined]
    g = mod.weight.detach().double().numpy()
    if lm.family == "gemma2":  # type: ignore[attr-defined]
        g = 1.0 + g
    beta = (np.zeros_like(g) if getattr(mod, "bias", None) is None
            else mod.bias.detach().double().numpy())
    d = g.size
    c = np.sqrt(d - 1) if lm.norm.kind == "layernorm" else np.sqrt(d)  # type: ignore[attr-defined]
    return np.full(d, c) if fold else np.abs(g) * c + np.abs(beta)


@pytest.mark.parametrize("fold", [False, True])
@pytest.mark.parametrize("family", FAMILIES)
def test_recorded_bound_contains_the_models_hidden_states(tiny_lm_dir, family, fold):
    lm = unembed.load(tiny_lm_dir(family), fold=fold)
    hb = lm.head.hidden_bound.to_dict()
    assert hb["kind"] == "box" and hb["rows"] == ("folded" if fold else "stored")
    r = hb["radii"]
    np.testing.assert_allclose(r, _expected_radii(lm, fold), rtol=1e-6)
    assert hb["radius"] == pytest.approx(r.max())
    assert "sqrt(d" in hb["reason"]
    H = lm.hidden_states(lm.random_inputs(4, 12, seed=1))
    ratio = np.abs(H) / r
    assert ratio.max() <= 1.0, f"hidden state outside the box by {ratio.max() - 1:.3g}"
    assert ratio.max() > 0.05  # the box is not absurdly loose on real states
    if fold:  # the normalised state itself: on the sphere |n|_2 = sqrt(d) (eps aside)
        d = H.shape[1]
        norms = np.linalg.norm(H, axis=1)
        assert norms.max() <= np.sqrt(d) * (1 + 1e-9)
        assert norms.min() > 0.99 * np.sqrt(d)
        if lm.norm.kind == "layernorm":
            assert np.abs(H.sum(axis=1)).max() < 1e-6


def test_resnet_has_no_bound_and_vit_has_one(tiny_vision_dir):
    assert unembed.load(tiny_vision_dir("resnet")).head.hidden_bound is None
    vit = unembed.load(tiny_vision_dir("vit"))
    H = vit.hidden_states(vit.random_inputs(3, seed=2))
    assert (np.abs(H) <= vit.head.hidden_bound.radii).all()


@pytest.mark.parametrize("fold", [False, True])
@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_argmaxable_all_under_the_architecture_box(tiny_lm_dir, family, fold):
    head = unembed.load(tiny_lm_dir(family), fold=fold).head
    r = head.hidden_bound.radii
    res = argmaxable_all(head, radius="architecture", workers=1, n_narrowest=2)
    assert res.hidden_bound.source == "architecture"
    np.testing.assert_array_equal(res.hidden_bound.radii, r)
    assert "relaxation" in res.hidden_bound.meaning
    # raw: |h_j| <= |g_j| c + |beta_j|, one half-width per coordinate; folded: |h|_inf <= c
    assert ("per-coordinate box" in res.formulation) != fold
    assert f"{r.max():g}" in res.formulation
    yes = np.flatnonzero(res.status == "yes")
    assert yes.size > 0
    for i in yes[:: max(1, yes.size // 25)]:
        h = res.witness(int(i))
        assert h is not None and (np.abs(h) <= r * (1 + 1e-12)).all()
        z = head.W @ h + head.bias
        assert int(np.argmax(z)) == i and np.sort(z)[-2] < z[i]
    d = json.loads(json.dumps(unembed._json.jsonable(res.to_dict())))
    assert d["hidden_bound"]["source"] == "architecture" and len(d["hidden_bound"]["radii"]) == r.size


def test_a_row_inside_the_hull_is_no_with_a_certificate_in_the_box(tiny_llama_dir):
    head = unembed.load(tiny_llama_dir).head
    W = head.W.copy()
    W[5] = 0.5 * W[3] + 0.3 * W[9] + 0.2 * W[11]
    planted = head.with_weights(W)  # same hidden states: the recorded bound still applies
    r = is_argmaxable(planted, 5, radius="architecture")
    assert r.status == "no" and r.certificate is not None
    assert r.certificate.bound <= r.tol
    assert r.claim.startswith("proven for the model")
    yes = is_argmaxable(planted, 3, radius="architecture")
    assert yes.status == "yes" and "relaxation" in yes.claim
    assert (np.abs(yes.witness) <= planted.hidden_bound.radii * (1 + 1e-12)).all()
    assert int(np.argmax(planted.logits(yes.witness))) == 3
    ranking = is_feasible_ranking(planted, [3, 9], radius="architecture")
    assert ranking.to_dict()["hidden_bound"]["source"] == "architecture"


def test_per_coordinate_box_is_respected():
    W = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    head = Head(W, b=np.array([0.0, 0.0, 5.0]))
    tight = is_argmaxable(head, 0, radius=np.array([0.1, 0.1]))
    assert tight.status == "no" and tight.certificate is not None
    wide = is_argmaxable(head, 0, radius=np.array([100.0, 0.1]))
    assert wide.status == "yes"
    assert np.abs(wide.witness[1]) <= 0.1 * (1 + 1e-12) and int(np.argmax(head.logits(wide.witness))) == 0
    assert wide.hidden_bound.per_coordinate is True
    assert "from 0.1 to 100" in wide.formulation
    # the scalar box of the same largest half-width reaches it too, through the second coordinate
    assert is_argmaxable(head, 0, radius=100.0).status == "yes"
    vocab = argmaxable_all(head, radius=np.array([0.1, 0.1]), workers=1)
    assert list(vocab.status) == ["no", "no", "yes"]


def test_head_without_a_recorded_bound_is_refused():
    head = Head(np.eye(3), meta={"source": "weights.npy"})
    with pytest.raises(UnembedError, match="weights.npy records no bound"):
        is_argmaxable(head, 0, radius="architecture")
    with pytest.raises(UnembedError, match="'radius' argument of argmaxable_all"):
        argmaxable_all(head, radius="architecture")
    with pytest.raises(UnembedError, match="'radius' argument of is_argmaxable"):
        is_argmaxable(head, 0, radius="sphere")
    with pytest.raises(UnembedError, match=r"shape \(3,\)"):
        is_argmaxable(head, 0, radius=np.array([1.0, 2.0]))


def test_bound_dropped_after_a_non_symmetry(tiny_llama_dir):
    head = unembed.load(tiny_llama_dir).head
    moved, _ = reparametrize(head, 2.0 * np.eye(head.d), force=True)
    with pytest.raises(UnembedError, match="no longer applies"):
        is_argmaxable(moved, 0, radius="architecture")


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**16), label=st.integers(0, 40))
def test_verdict_under_the_box_is_translation_invariant(tiny_gpt2_dir, seed, label):
    head = unembed.load(tiny_gpt2_dir).head
    c = np.random.default_rng(seed).standard_normal(head.d)
    a = is_argmaxable(head, label, radius="architecture")
    b = is_argmaxable(translate(head, c), label, radius="architecture")
    assert a.status == b.status
    if b.witness is not None:  # the translated head's witness works for the original too
        assert int(np.argmax(head.logits(b.witness))) == label
