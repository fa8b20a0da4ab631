"""TransformerLens HookedTransformer: the head, what weight processing did to its rows, hidden
states through hooks, and the soft-cap warning. Tiny models built from a config (no download).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import SENTENCES, make_tokenizer
from unembed import UnembedError, compare_logits, load, translation_for_cosine
from unembed.audit import audit
from unembed.behaviour import TextWindows
from unembed.summary import summarize


def _tokenizer(tmp: Path):
    import transformers as tf

    make_tokenizer().save_pretrained(tmp)
    return tf.AutoTokenizer.from_pretrained(tmp)


def build_tl(tmp: Path, *, norm: str = "LN", softcap: float | None = None, seed: int = 0):
    """A tiny HookedTransformer (1 layer, d = 16) with the shared BPE tokenizer, every
    parameter perturbed so norms have real gains and shifts."""
    import torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    tok = _tokenizer(tmp)
    kw = {} if softcap is None else {"output_logits_soft_cap": softcap}
    cfg = HookedTransformerConfig(n_layers=1, d_model=16, n_ctx=32, d_head=8, n_heads=2,
                                  d_mlp=32, d_vocab=len(tok), act_fn="gelu",
                                  normalization_type=norm, seed=seed, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        m = HookedTransformer(cfg, tokenizer=tok)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    m.eval()
    return m


def _ids(v: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, v, size=(3, 7))


def _torch_logits(m, ids):
    import torch

    with torch.no_grad():
        return m(torch.from_numpy(ids)).double().reshape(-1, m.cfg.d_vocab).numpy()


@pytest.mark.parametrize("norm", ["LN", "RMS"])
def test_head_is_W_U_and_logits_match(tmp_path, norm):
    import torch

    m = build_tl(tmp_path, norm=norm)
    lm = load(m)
    assert lm.kind == "transformer_lens" and lm.head.rows == "stored"
    assert np.array_equal(lm.head.W, m.W_U.detach().double().numpy().T)
    assert np.array_equal(lm.head.b, m.b_U.detach().double().numpy())
    ids = _ids(m.cfg.d_vocab)
    h, z = lm.forward(ids)
    assert h.shape == (21, 16) and z.shape == (21, m.cfg.d_vocab)
    # independent: the final norm recomputed from the residual stream by hand, then W_U, b_U
    _, cache = m.run_with_cache(torch.from_numpy(ids))
    resid = cache["blocks.0.hook_resid_post"].double().reshape(-1, 16).numpy()
    w = m.ln_final.w.detach().double().numpy()
    if norm == "LN":
        xc = resid - resid.mean(1, keepdims=True)
        n = xc / np.sqrt((xc**2).mean(1, keepdims=True) + m.cfg.eps)
        hh = n * w + m.ln_final.b.detach().double().numpy()
    else:
        hh = resid / np.sqrt((resid**2).mean(1, keepdims=True) + m.cfg.eps) * w
    assert np.abs(h - hh).max() < 1e-5
    z_indep = hh @ m.W_U.detach().double().numpy() + m.b_U.detach().double().numpy()
    assert np.abs(z_indep - _torch_logits(m, ids)).max() < 1e-4
    assert np.abs(lm.head.logits(h) - z).max() < 1e-4
    assert np.abs(z - _torch_logits(m, ids)).max() == 0.0


def test_processing_is_detected_and_its_meaning_for_the_rows(tmp_path):
    m = build_tl(tmp_path)
    before = load(m)
    assert not any(before.processing.to_dict()[k] for k in
                   ("fold_ln", "rows_off_ones", "center_unembed", "center_writing_weights"))
    W0 = before.head.W
    g = m.ln_final.w.detach().double().numpy()
    ids = _ids(m.cfg.d_vocab)
    z0 = before.model_logits(ids)
    m.process_weights_(fold_ln=True, center_writing_weights=True, center_unembed=True)
    after = load(m)
    p = after.processing
    assert p.normalization == "LNPre" and p.fold_ln and p.rows_off_ones and p.center_unembed
    assert p.center_writing_weights
    assert after.head.rows == "folded" and len(after.head.meta["notes"]) == 4
    # what the processing means for the rows, recomputed independently from the raw rows:
    # fold the gain, project each row off the all-ones vector, subtract the mean row
    Wf = W0 * g
    Wf = Wf - Wf.mean(axis=1, keepdims=True)
    Wf = Wf - Wf.mean(axis=0, keepdims=True)
    assert np.abs(after.head.W - Wf).max() < 1e-5
    # the LayerNorm null space is declared, and the behaviour kept (log-probs equal)
    ns = after.head.null_space
    assert ns is not None and np.allclose(np.abs(ns[:, 0]), 1 / np.sqrt(16))
    z1 = after.model_logits(ids)
    eq = compare_logits(z0, z1, "softmax", dtype="float32")
    assert eq.equivalent
    h = after.hidden_states(ids)
    assert np.abs(h.sum(axis=1)).max() < 1e-4  # LNPre: h is orthogonal to the ones vector


def test_softcap_with_centred_rows_is_called_out(tmp_path):
    import torch

    m = build_tl(tmp_path, norm="RMS", softcap=5.0)
    lm = load(m)
    assert lm.head.softcap == 5.0 and not lm.processing.center_unembed
    ids = _ids(m.cfg.d_vocab)
    z0 = _torch_logits(m, ids)
    m.process_weights_(fold_ln=False, center_writing_weights=False, center_unembed=True)
    with pytest.warns(UserWarning, match="soft-cap"):
        lm2 = load(m)
    assert lm2.processing.center_unembed
    assert any("not a symmetry of a soft-capped head" in n for n in lm2.head.meta["notes"])
    # the warning is true: the processed model's log-probs differ from the original's
    z1 = _torch_logits(m, ids)
    lp0 = torch.log_softmax(torch.from_numpy(z0), -1).numpy()
    lp1 = torch.log_softmax(torch.from_numpy(z1), -1).numpy()
    assert np.abs(lp0 - lp1).max() > 1e-3
    assert np.abs(lm2.head.logits(lm2.hidden_states(ids)) - z1).max() < 1e-4


def test_inspect_counterexample_audit_go_through(tmp_path):
    m = build_tl(tmp_path)
    m.process_weights_(fold_ln=True, center_writing_weights=True, center_unembed=True)
    lm = load(m)
    s = summarize(lm.head, max_labels=60)
    assert s.rows == "folded" and s.pairs
    a, b = lm.head.labels[40], lm.head.labels[41]
    res = translation_for_cosine(lm.head, a, b, -0.9)
    new = lm.with_head(res.head)
    i, j = lm.head.index(a), lm.head.index(b)
    W = new.head.W
    cos = W[i] @ W[j] / np.linalg.norm(W[i]) / np.linalg.norm(W[j])
    assert abs(cos - (-0.9)) < 1e-5  # the written model's rows (float32), recomputed here
    ids = _ids(m.cfg.d_vocab, seed=3)
    assert compare_logits(lm.model_logits(ids), new.model_logits(ids), "softmax",
                          dtype="float32").equivalent
    data_file = tmp_path / "data.txt"
    data_file.write_text("\n".join(SENTENCES * 4), encoding="utf-8")
    data = TextWindows([data_file], lm.tokenize, window=8)
    r = audit(lm, data, top_n=12, batch_size=4, progress=False, co_top=False)
    assert len(r.labels) == 12 and r.behaviour.n_predictions > 0


def test_wrong_inputs_are_one_line_errors(tmp_path):
    lm = load(build_tl(tmp_path))
    with pytest.raises(UnembedError, match=r"token ids must be in \[0, 300\)"):
        lm.model_logits(np.array([[0, 999]]))


def test_an_explicit_accelerator_is_refused_not_ignored(tmp_path):
    """The HookedTransformer runs where the user put it: --device cuda is refused, not ignored."""
    m = build_tl(tmp_path)
    with pytest.raises(UnembedError, match="--device cuda applies to torch models"):
        load(m, device="cuda")
    assert load(m, device="cpu").head.W.shape == (m.cfg.d_vocab, m.cfg.d_model)


def test_exported_state_dict_reads_back_with_its_config(tmp_path):
    """export_model writes the state dict and its config; load_state_dict_file reads the pair
    back as written (no processing): the original model's probabilities (torch, independently),
    the translated rows, and the labels from the tokenizer the config names."""
    import torch

    from unembed.export import export_model
    from unembed.sources.tlens import config_path, load_state_dict_file

    m = build_tl(tmp_path, norm="RMS", seed=2)
    m.process_weights_(fold_ln=True, center_writing_weights=True, center_unembed=True)
    lm = load(m)
    a, b = lm.head.labels[40], lm.head.labels[41]
    res = translation_for_cosine(lm.head, a, b, 0.5)
    out = tmp_path / "rms.pt"
    written = export_model(lm, res.head, out)
    assert config_path(out).is_file()
    # the tokenizer came from a directory: not recorded (a config's tokenizer is a hub name,
    # read from the hub cache only), said in a note; --labels DIR gives the labels back
    assert json.loads(config_path(out).read_text())["config"]["tokenizer_name"] is None
    assert any("--labels" in n for n in written.notes)
    assert load_state_dict_file(out).head.labels_from == "row numbers"
    back = load_state_dict_file(out, labels=tmp_path)
    assert back.processing.normalization == "RMSPre" and back.head.rows == "folded"
    assert back.head.labels == lm.head.labels
    ids = _ids(m.cfg.d_vocab, seed=4)
    ref = torch.log_softmax(torch.from_numpy(_torch_logits(m, ids)), -1).numpy()
    got = torch.log_softmax(torch.from_numpy(back.model_logits(ids)), -1).numpy()
    assert np.abs(got - ref).max() < 1e-5
    W0 = m.W_U.detach().double().numpy().T
    assert np.abs(back.head.W - (W0 + res.c)).max() < 1e-6
    i, j = back.head.index(a), back.head.index(b)
    W = back.head.W
    assert abs(W[i] @ W[j] / np.linalg.norm(W[i]) / np.linalg.norm(W[j]) - 0.5) < 1e-5
    bf = load_state_dict_file(out, dtype="bfloat16")
    assert bf.head.dtype == "bfloat16"
    assert compare_logits(ref, bf.model_logits(ids), "softmax", dtype="bfloat16").equivalent
    config_path(out).unlink()
    with pytest.raises(UnembedError, match="holds no architecture.*rms.tl_config.json"):
        load_state_dict_file(out)
