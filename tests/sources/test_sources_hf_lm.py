"""HuggingFace causal LMs: the exact head of each family, raw and folded views."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import LM_FAMILIES, build_lm_dir
from unembed import UnembedError, shift_in_null_space, translate
from unembed.sources.hf_lm import load_hf_lm

TIED = {"gpt2": True, "gpt_neox": False, "llama": False, "mistral": False, "qwen2": True,
        "gemma": True, "gemma2": True, "opt": True}
NORM = {"gpt2": "layernorm", "gpt_neox": "layernorm", "llama": "rmsnorm", "mistral": "rmsnorm",
        "qwen2": "rmsnorm", "gemma": "rmsnorm_1p", "gemma2": "rmsnorm_1p", "opt": "layernorm"}


def _max_rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / (1.0 + np.abs(b).max()))


@pytest.mark.parametrize("family", LM_FAMILIES)
@pytest.mark.parametrize("fold", [False, True])
def test_head_logits_equal_model_logits(tiny_lm_dir, family, fold):
    m = load_hf_lm(tiny_lm_dir(family), fold=fold)
    meta = m.head.meta
    assert meta["family"] == family
    assert m.head.rows == ("folded" if fold else "stored") and meta["folded"] is fold
    assert meta["tied"] is TIED[family]
    assert meta["norm_kind"] == NORM[family]
    assert m.kind == "hf_lm" and m.head.dtype == "float32" and m.head.W.dtype == np.float64
    ids = m.random_inputs(3, 7, seed=1)
    h, z = m.hidden_states(ids), m.model_logits(ids)
    assert h.shape == (21, m.head.d) and z.shape == (21, m.head.n_labels)
    err = _max_rel(m.head.logits(h), z)
    assert err < 1e-5, f"{family} fold={fold}: head.logits(h) differs from the model by {err:.2e}"


@pytest.mark.parametrize("family", ["gpt2", "llama", "gemma", "opt"])
def test_raw_and_folded_differ_in_rows_and_agree_on_logits(tiny_lm_dir, family):
    raw = load_hf_lm(tiny_lm_dir(family))
    folded = load_hf_lm(tiny_lm_dir(family), fold=True)
    g = raw.norm.gain
    assert not np.allclose(g, 1.0), "the fixture's norm gain must be non-trivial"
    np.testing.assert_array_equal(folded.head.W, raw.head.W * g[None, :])
    assert np.abs(folded.head.W - raw.head.W).max() > 1e-3
    ids = raw.random_inputs(2, 5, seed=3)
    assert _max_rel(folded.head.logits(folded.hidden_states(ids)),
                    raw.head.logits(raw.hidden_states(ids))) < 1e-5
    # the normalised state of the folded view carries no gain: RMS 1 per position
    n = folded.hidden_states(ids)
    np.testing.assert_allclose(np.sqrt((n ** 2).mean(axis=1)), 1.0, atol=1e-3)


def test_soft_capped_family_refuses_translation(tiny_gemma2_dir):
    m = load_hf_lm(tiny_gemma2_dir)
    assert m.head.softcap == 30.0
    with pytest.raises(UnembedError, match="soft-capped"):
        translate(m.head, np.ones(m.head.d))
    # the soft-cap is part of the head: logits agree only with it applied
    ids = m.random_inputs(2, 4)
    z = m.model_logits(ids)
    assert _max_rel(m.head.logits(m.hidden_states(ids)), z) < 1e-5


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_folded_layernorm_null_space_keeps_model_logits(tiny_gpt2_dir, seed):
    m = _cached_folded_gpt2(tiny_gpt2_dir)
    assert m.head.null_space is not None and m.head.null_space.shape == (m.head.d, 1)
    ids = m.random_inputs(2, 5, seed=seed % 7)
    h = m.hidden_states(ids)
    np.testing.assert_allclose(h @ m.head.null_space, 0.0, atol=1e-5)
    coeffs = np.random.default_rng(seed).normal(scale=5.0, size=(m.head.n_labels, 1))
    moved = shift_in_null_space(m.head, coeffs)
    assert np.abs(moved.W - m.head.W).max() > 0.1
    assert _max_rel(moved.logits(h), m.model_logits(ids)) < 1e-4


_CACHE: dict[str, object] = {}


def _cached_folded_gpt2(path: Path):
    if "gpt2" not in _CACHE:
        _CACHE["gpt2"] = load_hf_lm(path, fold=True)
    return _CACHE["gpt2"]


def test_raw_layernorm_null_space_needs_zero_shift(tiny_gpt2_dir, tmp_path):
    raw = load_hf_lm(tiny_gpt2_dir)
    assert raw.head.null_space is None
    assert "bias would have to absorb" in raw.head.null_space_reason
    # with the shift set to zero, 1/g is orthogonal to every reachable h
    import torch
    import transformers as tf

    model = tf.AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir)
    with torch.no_grad():
        model.transformer.ln_f.bias.zero_()
    model.save_pretrained(tmp_path)
    for f in tiny_gpt2_dir.glob("tokenizer*"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    m = load_hf_lm(tmp_path)
    ns = m.head.null_space
    assert ns is not None
    np.testing.assert_allclose(np.abs(ns[:, 0]), np.abs(1 / m.norm.gain) /
                               np.linalg.norm(1 / m.norm.gain))
    ids = m.random_inputs(2, 5)
    h = m.hidden_states(ids)
    moved = shift_in_null_space(m.head, np.linspace(-3, 3, m.head.n_labels))
    assert _max_rel(moved.logits(h), m.model_logits(ids)) < 1e-4


def test_rmsnorm_has_no_null_space_and_norm_is_not_a_general_reparam(tiny_llama_dir):
    m = load_hf_lm(tiny_llama_dir)
    assert m.head.null_space is None
    assert m.head.reparam is False and "diagonal" in m.head.reparam_reason


def test_labels_are_readable_unique_tokens(tiny_gpt2_dir):
    m = load_hf_lm(tiny_gpt2_dir)
    labels = m.head.labels
    assert len(set(labels)) == len(labels) == m.head.n_labels
    assert " the" in labels and not any("Ġ" in s for s in labels)
    ids = m.tokenize("the cat sat")
    assert "".join(labels[i] for i in ids) == "the cat sat"
    # a multi-byte character split over tokens stays readable as escaped bytes
    assert any(s.startswith("\\x") for s in labels)


def test_duplicate_tokens_are_disambiguated_by_row():
    from unembed.sources.hf_lm import readable_labels

    class Tok:
        backend_tokenizer = None

        def __len__(self):
            return 3

        def convert_ids_to_tokens(self, ids):
            return ["a", "▁a", " a"][: len(ids)]

    assert readable_labels(Tok(), 4) == ("a", " a", " a [#2]", "[#3]")


def test_bfloat16_weights_read_as_stored(tmp_path):
    import torch

    d = build_lm_dir(tmp_path / "bf16", "llama", dtype=torch.bfloat16)
    m = load_hf_lm(d)
    assert m.head.dtype == "bfloat16" and m.head.W.dtype == np.float64
    # bfloat16 has 8 significant bits: every stored value survives the round trip
    back = torch.from_numpy(np.array(m.head.W)).to(torch.bfloat16).to(torch.float64).numpy()
    np.testing.assert_array_equal(back, m.head.W)
    ids = m.random_inputs(2, 4)
    assert _max_rel(m.head.logits(m.hidden_states(ids)), m.model_logits(ids)) < 5e-2


def test_generic_architecture_through_output_embeddings_and_norm(tmp_path):
    import torch
    import transformers as tf

    from conftest import _perturb, make_tokenizer

    tok = make_tokenizer()
    cfg = tf.Qwen3Config(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         head_dim=8, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = tf.AutoModelForCausalLM.from_config(cfg)
    _perturb(model, 0)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    for fold in (False, True):
        m = load_hf_lm(tmp_path, fold=fold)
        assert m.head.meta["family"] == "qwen3 (generic)"
        assert m.head.meta["norm_kind"] == "rmsnorm"
        ids = m.random_inputs(2, 5)
        assert _max_rel(m.head.logits(m.hidden_states(ids)), m.model_logits(ids)) < 1e-5


def test_unreadable_architecture_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no_such_arch_xyz"}))
    with pytest.raises(UnembedError, match=r"config\.json"):
        load_hf_lm(tmp_path)


def test_missing_head_tensor_is_named(tmp_path, tiny_llama_dir):
    from safetensors.torch import load_file, save_file

    for f in tiny_llama_dir.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    sd = load_file(str(tmp_path / "model.safetensors"))
    del sd["lm_head.weight"]
    save_file(sd, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(UnembedError, match=r"lm_head\.weight"):
        load_hf_lm(tmp_path)


def test_architecture_with_unknown_logit_processing_is_refused(tmp_path):
    """A real (if tiny) registered architecture whose logits are lm_head(h) ** 1 + 0.5 * |.|:
    the generic path finds the Linear, runs the model, sees the logits are not the head's,
    and refuses instead of guessing."""
    import torch
    import transformers as tf

    class OddConfig(tf.PretrainedConfig):
        model_type = "unembed_test_odd"

        def __init__(self, vocab_size=50, hidden_size=8, **kw):
            self.vocab_size, self.hidden_size = vocab_size, hidden_size
            super().__init__(**kw)

    class OddLM(tf.PreTrainedModel):
        config_class = OddConfig

        def __init__(self, config):
            super().__init__(config)
            self.embed = torch.nn.Embedding(config.vocab_size, config.hidden_size)
            self.lm_head = torch.nn.Linear(config.hidden_size, config.vocab_size, bias=False)
            self.post_init()

        def get_input_embeddings(self):
            return self.embed

        def get_output_embeddings(self):
            return self.lm_head

        def forward(self, input_ids=None, **kw):
            z = self.lm_head(self.embed(input_ids))
            return tf.modeling_outputs.CausalLMOutput(logits=z + 0.5 * z.abs())

    tf.AutoConfig.register("unembed_test_odd", OddConfig, exist_ok=True)
    tf.AutoModelForCausalLM.register(OddConfig, OddLM, exist_ok=True)
    torch.manual_seed(0)
    OddLM(OddConfig()).save_pretrained(tmp_path)
    with pytest.raises(UnembedError, match="cannot be handled exactly"):
        load_hf_lm(tmp_path)


def test_texts_of_different_lengths_and_a_directory_without_tokenizer(tiny_gpt2_dir, tmp_path):
    m = load_hf_lm(tiny_gpt2_dir)
    texts = ["the cat", "a dog ran to the park"]
    n = sum(len(m.tokenize(t)) for t in texts)
    h, z = m.forward(texts)
    assert h.shape == (n, m.head.d) and z.shape == (n, m.head.n_labels)
    assert _max_rel(m.head.logits(h), z) < 1e-5
    for f in ("config.json", "model.safetensors"):
        (tmp_path / f).write_bytes((tiny_gpt2_dir / f).read_bytes())
    bare = load_hf_lm(tmp_path)
    assert bare.head.labels[:3] == ("0", "1", "2")
    assert bare.head.labels_from == "row numbers"
    with pytest.raises(UnembedError, match="no tokenizer"):
        bare.tokenize("the cat")
    np.testing.assert_array_equal(bare.head.W, m.head.W)


@pytest.mark.parametrize("layout", ["unprefixed_safetensors", "pytorch_model_bin"])
def test_older_checkpoint_layouts(tiny_gpt2_dir, tmp_path, layout):
    """GPT-2 as on the hub (keys without 'transformer.'), and a pytorch_model.bin checkpoint
    (read lazily with weights_only=True, mmap=True)."""
    import torch
    from safetensors.torch import load_file, save_file

    for f in tiny_gpt2_dir.iterdir():
        if f.name != "model.safetensors":
            (tmp_path / f.name).write_bytes(f.read_bytes())
    sd = load_file(str(tiny_gpt2_dir / "model.safetensors"))
    if layout == "unprefixed_safetensors":
        sd = {k.removeprefix("transformer."): v for k, v in sd.items()}
        save_file(sd, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    else:
        torch.save(sd, tmp_path / "pytorch_model.bin")
    ref = load_hf_lm(tiny_gpt2_dir, fold=True)
    m = load_hf_lm(tmp_path, fold=True)
    np.testing.assert_array_equal(m.head.W, ref.head.W)
    ids = m.random_inputs(2, 5)
    assert _max_rel(m.head.logits(m.hidden_states(ids)), ref.model_logits(ids)) < 1e-5


def test_sentencepiece_style_labels(tmp_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from unembed.sources.hf_lm import readable_labels

    tok = Tokenizer(models.BPE(byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(["the cat sat on the mat", "the dog"], trainers.BpeTrainer(
        vocab_size=60, special_tokens=["<unk>", "<0x0A>"], show_progress=False))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")
    labels = readable_labels(fast, len(fast))
    assert " the" in labels and "<0x0A>" in labels and not any("▁" in s for s in labels)
