"""The shared torch base (:mod:`unembed.sources.torch_base`) on real tiny models built
in-process: the HF LM, the HF image classifier, the HF text classifier and a torch module all
fold their final norm and check their logits through the one base; a model whose logits are
not its head's is refused by each, with the size of the difference, by the same check. Every
expected value is computed independently from the torch modules themselves."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from unembed import UnembedError, load
from unembed.sources.torch_base import HFClassifierSource, TorchSource

# the one message of TorchSource.check_batch (via _torch.check_logits_equal)
_REFUSED = r"logits are not head\.logits\(hidden state\) \(max difference [0-9.e+-]+ > "


def _np(t: Any) -> np.ndarray:
    return t.detach().double().numpy()


def _along_ones(ns: Any, d: int) -> None:
    """The head's null space is the one direction of the all-ones vector (any length)."""
    assert ns is not None and ns.shape == (d, 1)
    np.testing.assert_allclose(ns[:, 0] / ns[0, 0], np.ones(d), rtol=1e-12)


# --------------------------------------------------------------------------- every source
def test_every_torch_source_is_one_base(tiny_gpt2_dir: Path, tiny_vision_dir: Any,
                                        tmp_path: Path) -> None:
    lm = load(tiny_gpt2_dir)
    vit = load(tiny_vision_dir("vit"))
    net = load(torch.nn.Sequential(torch.nn.Linear(4, 3)))
    assert all(isinstance(m, TorchSource) for m in (lm, vit, net))
    assert isinstance(vit, HFClassifierSource)
    # the forward wrappers are the base's, not re-implemented per source
    for cls in (type(lm), type(vit), type(net)):
        for name in ("forward", "forward_native", "hidden_states", "model_logits",
                     "check_batch"):
            assert getattr(cls, name) is getattr(TorchSource, name), (cls, name)


def test_lm_folding_is_the_norm_gain_and_shift_in_the_rows(tiny_gpt2_dir: Path) -> None:
    """GPT-2: W_f = U diag(g), b_f = U beta; the folded hidden state is the LayerNorm's
    normalised state, recomputed here from the trunk's last hidden state before ln_f."""
    import transformers as tf

    folded = load(tiny_gpt2_dir, fold=True)
    ref = tf.AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir).eval()
    U, g, beta = _np(ref.lm_head.weight), _np(ref.transformer.ln_f.weight), \
        _np(ref.transformer.ln_f.bias)
    np.testing.assert_array_equal(folded.head.W, U * g[None, :])
    np.testing.assert_allclose(folded.head.b, U @ beta, rtol=1e-12, atol=1e-12)
    _along_ones(folded.head.null_space, U.shape[1])
    ids = np.random.default_rng(0).integers(0, 100, size=(2, 5))
    h, z = folded.forward(ids)
    with torch.no_grad():
        out = ref(input_ids=torch.as_tensor(ids), output_hidden_states=True)
    pre = _np(out.hidden_states[-1])  # GPT-2's last hidden state is after ln_f: undo it
    n = (pre - beta) / g
    np.testing.assert_allclose(h, n.reshape(-1, U.shape[1]), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(z, _np(out.logits).reshape(-1, U.shape[0]), rtol=1e-6,
                               atol=1e-6)


def test_vision_folding_uses_the_same_rule(tiny_vision_dir: Any) -> None:
    """ViT: the classifier reads the final LayerNorm at [CLS]; folded rows W diag(g), bias
    W beta + b, and logits equal to the model's own."""
    import transformers as tf

    d = tiny_vision_dir("vit")
    folded = load(d, fold=True)
    ref = tf.AutoModelForImageClassification.from_pretrained(d).eval()
    W, b = _np(ref.classifier.weight), _np(ref.classifier.bias)
    g, beta = _np(ref.vit.layernorm.weight), _np(ref.vit.layernorm.bias)
    np.testing.assert_array_equal(folded.head.W, W * g[None, :])
    np.testing.assert_allclose(folded.head.b, W @ beta + b, rtol=1e-12, atol=1e-12)
    _along_ones(folded.head.null_space, W.shape[1])
    x = folded.random_inputs(3, seed=1)
    h, z = folded.forward(x)
    with torch.no_grad():
        want = _np(ref(pixel_values=torch.as_tensor(x)).logits)
    np.testing.assert_allclose(z, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(h @ folded.head.W.T + folded.head.b, want, rtol=1e-4,
                               atol=1e-4)
    # the hidden state is n: zero mean and unit mean square per input (LayerNorm)
    np.testing.assert_allclose(h.mean(axis=1), 0.0, atol=1e-6)
    np.testing.assert_allclose((h * h).mean(axis=1), 1.0, rtol=1e-3)


def test_raw_layernorm_null_space_and_box_are_the_shared_ones(tiny_gpt2_dir: Path) -> None:
    """Stored rows after a LayerNorm: (1/g) . h = (1/g) . beta for every input, so the rows
    may move along 1/g only when that constant is 0; the box bounds every hidden state."""
    import transformers as tf

    raw = load(tiny_gpt2_dir)
    ref = tf.AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir).eval()
    g, beta = _np(ref.transformer.ln_f.weight), _np(ref.transformer.ln_f.bias)
    const = float((1.0 / g) @ beta)
    assert abs(const) > 1e-6 and raw.head.null_space is None
    assert f"{const:.3g}" in raw.head.null_space_reason
    h = raw.hidden_states(np.random.default_rng(1).integers(0, 100, size=(2, 6)))
    np.testing.assert_allclose(h @ (1.0 / g), const, rtol=1e-4, atol=1e-4)
    box = raw.head.hidden_bound
    assert box is not None and np.all(np.abs(h) <= box.radii[None, :])


# --------------------------------------------------------------------------- the one refusal
def test_lm_whose_logits_are_not_its_head_is_refused(tiny_gpt2_dir: Path,
                                                     tmp_path: Path) -> None:
    """A GPT-2 whose config claims a logit scale its forward pass does not apply: the head
    (scaled) and the model's logits disagree; the first batch is refused."""
    d = tmp_path / "scaled"
    d.mkdir()
    for f in tiny_gpt2_dir.iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((d / "config.json").read_text())
    cfg["logit_scale"] = 2.0
    (d / "config.json").write_text(json.dumps(cfg))
    m = load(d)
    assert m.head.logit_scale == 2.0
    with pytest.raises(UnembedError, match="the gpt2 model's " + _REFUSED):
        m.forward(np.zeros((1, 4), dtype=np.int64))


def _odd_classifier(kind: str) -> Any:
    """A real registered transformers architecture whose logits are
    classifier(h) + 0.5 |classifier(h)|: a head that is not its model's."""
    import transformers as tf

    class OddConfig(tf.PretrainedConfig):
        model_type = f"unembed_odd_{kind}"

        def __init__(self, vocab_size: int = 40, hidden_size: int = 6, image_size: int = 4,
                     num_channels: int = 3, **kw: Any) -> None:
            self.vocab_size, self.hidden_size = vocab_size, hidden_size
            self.image_size, self.num_channels = image_size, num_channels
            super().__init__(**kw)

    class OddBase(tf.PreTrainedModel):
        config_class = OddConfig

        def __init__(self, config: Any) -> None:
            super().__init__(config)
            if kind == "vision":
                self.embed = torch.nn.Linear(config.num_channels, config.hidden_size)
            else:
                self.embed = torch.nn.Embedding(config.vocab_size, config.hidden_size)
            self.classifier = torch.nn.Linear(config.hidden_size, config.num_labels)
            self.post_init()

        def forward(self, input_ids: Any = None, pixel_values: Any = None, **kw: Any) -> Any:
            if kind == "vision":
                x = self.embed(pixel_values.mean(dim=(2, 3)))
            else:
                x = self.embed(input_ids)
            z = self.classifier(x)
            return tf.modeling_outputs.TokenClassifierOutput(logits=z + 0.5 * z.abs())

    name = "OddForImageClassification" if kind == "vision" else "OddForTokenClassification"
    cls = type(name, (OddBase,), {})
    tf.AutoConfig.register(OddConfig.model_type, OddConfig, exist_ok=True)
    auto = (tf.AutoModelForImageClassification if kind == "vision"
            else tf.AutoModelForTokenClassification)
    auto.register(OddConfig, cls, exist_ok=True)
    return cls(OddConfig(id2label={0: "a", 1: "b", 2: "c"}, label2id={"a": 0, "b": 1, "c": 2}))


@pytest.mark.parametrize("kind", ["vision", "token"])
def test_hf_classifier_whose_logits_are_not_its_head_is_refused(kind: str,
                                                                tmp_path: Path) -> None:
    torch.manual_seed(0)
    _odd_classifier(kind).save_pretrained(tmp_path)
    noun = "classifier" if kind == "vision" else "token classifier"
    with pytest.raises(UnembedError, match=f"the unembed_odd_{kind} {noun}'s " + _REFUSED):
        load(tmp_path)


def test_torch_module_whose_output_is_not_its_linear_is_refused() -> None:
    """A module that ends in log-softmax: its output is not the Linear's logits, so it is
    not read as if it were (the first batch run says by how much)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LogSoftmax(dim=-1))
    m = load(net)
    with pytest.raises(UnembedError, match="Sequential.0: the Sequential model's " + _REFUSED):
        m.forward(np.ones((2, 4), dtype=np.float32))
    good = load(torch.nn.Sequential(torch.nn.Linear(4, 3)))
    h, z = good.forward(np.ones((2, 4), dtype=np.float32))
    np.testing.assert_allclose(z, h @ good.head.W.T + good.head.b, rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------- aliases
def test_audit_labels_is_a_deprecated_spelling_of_label_set() -> None:
    from unembed import Head
    from unembed.audit import audit
    from unembed.behaviour import ArrayInputs, collect

    head = Head(np.random.default_rng(0).normal(size=(6, 4)), labels=list("abcdef"))
    model = load(head)
    x = np.random.default_rng(1).normal(size=(30, 4))
    new = collect(model, ArrayInputs(x), label_set=["b", "#4", "f"], progress=False)
    with pytest.warns(DeprecationWarning, match="'labels' argument of collect is deprecated"):
        old = collect(model, ArrayInputs(x), labels=["b", "#4", "f"], progress=False)
    assert new.idx.tolist() == old.idx.tolist() == [1, 4, 5]
    np.testing.assert_array_equal(new.matrices["corr_p"], old.matrices["corr_p"])
    with pytest.warns(DeprecationWarning, match="'labels' argument of audit is deprecated"):
        res = audit(model, ArrayInputs(x), labels=["b", "#4", "f"], progress=False,
                    co_top=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res2 = audit(model, ArrayInputs(x), label_set=["b", "#4", "f"], progress=False,
                     co_top=False)
    assert res.behaviour.labels == res2.behaviour.labels == ("b", "e", "f")
    with pytest.warns(DeprecationWarning), \
            pytest.raises(UnembedError, match="pass the label set once"):
        collect(model, ArrayInputs(x), label_set=["a", "b"], labels=["a", "b"],
                progress=False)


def test_feasible_argmax_is_a_hidden_deprecated_alias(tmp_path: Path, capsys: Any) -> None:
    from unembed.cli import main

    W = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0], [0.1, 0.1]])
    wf = tmp_path / "w.npy"
    np.save(wf, W)
    assert main(["feasible", str(wf), "--argmaxable", "#3", "--json"]) == 0
    new = json.loads(capsys.readouterr().out)
    assert main(["feasible", str(wf), "--argmax", "#3", "--json"]) == 0
    captured = capsys.readouterr()
    old = json.loads(captured.out)
    assert "--argmax is deprecated; use --argmaxable" in captured.err
    # (0.1, 0.1) = (11 (1, 0) + 11 (0, 1) + 8 (-1, -1)) / 30, strictly inside the triangle of
    # the other rows: never the argmax
    assert old["status"] == new["status"] == "no"
    assert new["question"] == "argmaxable"
    assert main(["feasible", "--help"]) == 0
    helptext = capsys.readouterr().out
    assert "--argmaxable" in helptext and "--argmax " not in helptext


# --------------------------------------------------------------------------- export narrowing
def test_export_refuses_what_it_cannot_write_in_one_line(tmp_path: Path, capsys: Any) -> None:
    """A weight file loaded as a model (the CLI's own parser and loader) is not exportable:
    the checked narrowing refuses it with one line naming the file; export_model too."""
    from unembed import Head, export_model
    from unembed.cli import build_parser
    from unembed.cli._loading import head_source, load_model
    from unembed.export import check_exportable

    wf = tmp_path / "w.npy"
    np.save(wf, np.eye(3))
    args = build_parser().parse_args(["counterexample", str(wf), "--pair", "#0", "#1",
                                      "--target", "0.5", "--out", str(tmp_path / "o.npy")])
    model = load_model(args)
    with pytest.raises(UnembedError) as e:
        check_exportable(model, head_source(args))
    msg = str(e.value)
    assert msg.startswith(f"{wf}: a weight file") and "\n" not in msg
    assert "cannot be written back as a model" in msg
    with pytest.raises(UnembedError, match="^export_model: a weight file"):
        export_model(load(Head(np.eye(3))), Head(np.eye(3)), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_a_model_of_ones_own_is_checked_where_it_enters() -> None:
    """A plain object with only a head and hidden states is refused in one line naming what
    it lacks; the same object on HeadModel runs, with the head's logits as its own."""
    from unembed import Head
    from unembed.behaviour import ArrayInputs, collect
    from unembed.sources.base import HeadModel

    head = Head(np.random.default_rng(0).normal(size=(4, 3)), labels=list("abcd"))

    class Plain:
        kind = "mine"

        def __init__(self) -> None:
            self.head = head

        def hidden_states(self, x: Any) -> np.ndarray:
            return np.asarray(x, dtype=np.float64)

    class Mine(Plain, HeadModel):
        pass

    x = np.random.default_rng(1).normal(size=(12, 3))
    with pytest.raises(UnembedError, match=r"^collect: a Plain is not a loaded model \(it has "
                                           r"no model_logits, forward, random_inputs\)"):
        collect(Plain(), ArrayInputs(x), progress=False)
    beh = collect(Mine(), ArrayInputs(x), progress=False)
    z = x @ head.W.T  # independent: the argmax counts of the logits
    np.testing.assert_array_equal(beh.tally.argmax_count,
                                  np.bincount(z.argmax(axis=1), minlength=4))
    with pytest.raises(UnembedError, match="Mine model cannot draw random inputs"):
        Mine().random_inputs(2, 0)
