"""Export: equivalent models written back in their own format, reloaded and compared."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unembed import UnembedError, cosine, export_model, load, translation_for_cosine

LM_TRANSLATABLE = ("gpt2", "gpt_neox", "llama", "mistral", "qwen2", "gemma", "opt")


def _plain_logprobs(path, ids):
    import transformers as tf

    model = tf.AutoModelForCausalLM.from_pretrained(str(path)).eval()
    with torch.no_grad():
        return torch.log_softmax(model(torch.as_tensor(ids)).logits.double(), -1).numpy()


@pytest.mark.parametrize("family", LM_TRANSLATABLE)
@pytest.mark.parametrize("fold", [False, True])
def test_lm_export_reloads_with_plain_transformers(tiny_lm_dir, tmp_path, family, fold):
    src = tiny_lm_dir(family)
    m = load(src, fold=fold)
    a, b = " the", " dog"
    res = translation_for_cosine(m.head, a, b, -1.0)
    out = tmp_path / "neg"
    r = export_model(m, res.head, out)
    assert r.equivalence.equivalent, r.equivalence.verdict
    assert r.untied is m.head.meta["tied"]
    config = json.loads((out / "config.json").read_text())
    assert config.get("tie_word_embeddings", False) is False
    # the re-read head has the chosen cosine in the same view
    assert r.head.rows == m.head.rows
    assert abs(cosine(r.head, a, b, view="raw") + 1.0) < 1e-6
    # plain transformers loads it, and every log-probability agrees with the original
    ids = np.random.default_rng(5).integers(0, m.head.n_labels, size=(3, 11))
    before, after = _plain_logprobs(src, ids), _plain_logprobs(out, ids)
    assert np.abs(before - after).max() < 1e-4
    # input embeddings are unchanged
    new = load(out)
    assert new.head.meta["tied"] is False


def test_lm_export_then_plus_one_and_tokenizer_kept(tiny_gpt2_dir, tmp_path):
    m = load(tiny_gpt2_dir)
    res = translation_for_cosine(m.head, " the", " cat" if " cat" in m.head.labels else "cat",
                                 1.0)
    r = export_model(m, res.head, tmp_path / "pos", inputs=["the cat sat on the mat"])
    assert r.equivalence.n_inputs == len(m.tokenize("the cat sat on the mat"))
    assert (tmp_path / "pos" / "tokenizer.json").is_file()
    assert load(tmp_path / "pos").tokenize("the dog") == m.tokenize("the dog")


def test_existing_target_needs_force_and_failed_export_writes_nothing(tiny_llama_dir, tmp_path):
    m = load(tiny_llama_dir)
    res = translation_for_cosine(m.head, "#5", "#9", 0.5)
    out = tmp_path / "x"
    out.mkdir()
    (out / "keep").write_text("old")
    with pytest.raises(UnembedError, match="already exists"):
        export_model(m, res.head, out)
    # a head that is not equivalent (one row scaled) is refused and nothing is moved
    W = np.array(m.head.W)
    W[3] *= 3.0
    with pytest.raises(UnembedError, match="not equivalent"):
        export_model(m, m.head.with_weights(W), out, force=True)
    assert (out / "keep").read_text() == "old"
    assert not list(tmp_path.glob(".x.*"))
    export_model(m, res.head, out, force=True)
    assert not (out / "keep").exists() and (out / "config.json").is_file()


def test_bfloat16_export_within_its_tolerance(tmp_path):
    from conftest import build_lm_dir

    src = build_lm_dir(tmp_path / "bf", "qwen2", dtype=torch.bfloat16)
    m = load(src)
    res = translation_for_cosine(m.head, "#10", "#20", -1.0)
    r = export_model(m, res.head, tmp_path / "out")
    assert r.head.dtype == "bfloat16" and r.equivalence.equivalent
    # rounding the translated rows to bfloat16 leaves the cosine near, not at, -1
    assert cosine(r.head, 10, 20, view="raw") < -0.99


@pytest.mark.parametrize("family", ["vit", "convnext", "resnet"])
def test_vision_export(tiny_vision_dir, tmp_path, family):
    import transformers as tf

    m = load(tiny_vision_dir(family))
    res = translation_for_cosine(m.head, "class_a", "class_c", -1.0)
    r = export_model(m, res.head, tmp_path / "v")
    assert r.equivalence.equivalent and abs(cosine(r.head, 0, 2, view="raw") + 1) < 1e-6
    plain = tf.AutoModelForImageClassification.from_pretrained(str(tmp_path / "v")).eval()
    x = m.random_inputs(2, seed=4)
    with torch.no_grad():
        z = plain(pixel_values=torch.as_tensor(x)).logits.double().numpy()
    np.testing.assert_allclose(np.exp(z - np.log(np.exp(z).sum(1, keepdims=True))),
                               m.head.probs(m.hidden_states(x)), atol=1e-5)


def test_torch_state_dict_export(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 5))
    m = load(net, component="2")
    res = translation_for_cosine(m.head, "0", "1", -1.0)
    x = torch.randn(20, 6)
    for suffix in (".safetensors", ".pt"):
        r = export_model(m, res.head, tmp_path / f"sd{suffix}", inputs=x)
        assert r.equivalence.equivalent
        if suffix == ".pt":
            sd = torch.load(tmp_path / "sd.pt", weights_only=True)
        else:
            from safetensors.torch import load_file

            sd = load_file(str(tmp_path / "sd.safetensors"))
        user = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 5))
        user.load_state_dict(sd)
        with torch.no_grad():
            p0, p1 = torch.softmax(net(x), -1), torch.softmax(user(x), -1)
        assert float((p0 - p1).abs().max()) < 1e-5
        assert abs(cosine(load(user, component="2").head, 0, 1, view="raw") + 1) < 1e-6
    r = export_model(m, res.head, tmp_path / "sd2.pt")
    assert "random hidden states" in r.notes[0]


@pytest.mark.parametrize("binary", [False, True])
def test_sklearn_export(tmp_path, binary):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    if binary:
        y = (y == 1).astype(int)
    est = LogisticRegression(max_iter=1000).fit(X, y)
    m = load(est)
    res = translation_for_cosine(m.head, "0", "1", 0.9 if binary else -1.0)
    r = export_model(m, res.head, tmp_path / "est.pkl", inputs=X)
    new = pickle.loads((tmp_path / "est.pkl").read_bytes())
    np.testing.assert_allclose(new.predict_proba(X), est.predict_proba(X), atol=1e-12)
    if binary:
        assert abs(cosine(r.head, "0", "1", view="raw") + 1.0) < 1e-12 and "difference" in r.notes[-1]
    else:
        assert abs(cosine(r.head, "0", "1", view="raw") - res.target) < 1e-9
        np.testing.assert_array_equal(new.intercept_, est.intercept_)


def test_sklearn_ovr_cannot_be_translated():
    from sklearn.datasets import load_iris
    from sklearn.linear_model import SGDClassifier

    X, y = load_iris(return_X_y=True)
    m = load(SGDClassifier(random_state=0).fit(X, y))
    with pytest.raises(UnembedError, match="sigmoid"):
        translation_for_cosine(m.head, "0", "1", -1.0)


def test_cli_counterexample_model_directory(tiny_gpt2_dir, tmp_path):
    out = tmp_path / "neg"
    cmd = [sys.executable, "-m", "unembed", "counterexample", "--model", str(tiny_gpt2_dir),
           "--pair", " the", " dog", "--target", "-1", "--out", str(out), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(proc.stdout)
    assert abs(rec["cosine_written"] + 1) < 1e-6 and rec["verification"]["equivalent"]
    assert rec["export"]["untied"] is True and rec["rows"] == "stored"
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 2 and "already exists" in again.stderr
    insp = subprocess.run([sys.executable, "-m", "unembed", "cosine", "--model", str(out),
                           " the", " dog", "--json"], capture_output=True, text=True)
    assert insp.returncode == 0, insp.stderr
    assert " the" in insp.stdout


def test_generic_lm_with_biased_head_exports_per_label_bias(tmp_path, tiny_gpt2_dir):
    """Phi (not in FAMILIES): LayerNorm 'final_layernorm' and an lm_head with a bias. Moving
    folded rows along the null direction 1 is equivalent, but unfolded it needs a per-label
    bias -a_i (1/g) . beta: written into Phi's own bias; refused for GPT-2, which has none."""
    import transformers as tf

    from conftest import _perturb, make_tokenizer
    from unembed import shift_in_null_space

    tok = make_tokenizer()
    cfg = tf.PhiConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                       num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    model = tf.AutoModelForCausalLM.from_config(cfg)
    _perturb(model, 0)
    model.save_pretrained(tmp_path / "phi")
    tok.save_pretrained(tmp_path / "phi")
    m = load(tmp_path / "phi", fold=True)
    assert m.head.meta["family"] == "phi (generic)" and m.head.meta["norm_kind"] == "layernorm"
    assert m.raw_b is not None
    shift = np.random.default_rng(0).normal(size=m.head.n_labels)
    new = shift_in_null_space(m.head, shift)
    text = ["the cat sat on the mat", "a dog ran"]
    r = export_model(m, new, tmp_path / "out", inputs=text)
    assert r.equivalence.equivalent, r.equivalence.verdict
    written = load(tmp_path / "out")
    assert np.ptp(written.raw_b - m.raw_b) > 1e-3  # a per-label bias was written
    gpt2 = load(tiny_gpt2_dir, fold=True)
    with pytest.raises(UnembedError, match="different bias per label"):
        export_model(gpt2, shift_in_null_space(gpt2.head, shift), tmp_path / "g")


@settings(max_examples=8, deadline=None)
@given(target=st.floats(-1.0, 1.0), pair=st.sampled_from([(0, 1), (0, 2), (2, 1)]))
def test_sklearn_export_equivalent_for_any_target(tmp_path_factory, target, pair):
    """Invariance: whatever cosine is chosen, the written estimator predicts the same
    probabilities and its re-read rows have that cosine."""
    m = _iris_model()
    res = translation_for_cosine(m.head, *pair, target)
    out = tmp_path_factory.mktemp("h") / "m.pkl"
    r = export_model(m, res.head, out)
    assert r.equivalence.max_abs_dp <= 1e-12
    assert abs(cosine(r.head, *pair, view="raw") - target) < 1e-9


_IRIS: list = []


def _iris_model():
    if not _IRIS:
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression

        X, y = load_iris(return_X_y=True)
        _IRIS.append(load(LogisticRegression(max_iter=1000).fit(X, y)))
    return _IRIS[0]


def test_soft_capped_model_forced_translation_is_not_exported(tiny_gemma2_dir, tmp_path):
    from unembed import translate

    m = load(tiny_gemma2_dir)
    forced = translate(m.head, np.full(m.head.d, 3.0), force=True)
    with pytest.raises(UnembedError, match="not equivalent"):
        export_model(m, forced, tmp_path / "g")
    assert not (tmp_path / "g").exists()
