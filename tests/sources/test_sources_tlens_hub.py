"""TransformerLens models by name from the command line: ``--model gpt2 --as transformer-lens``
reads ``HookedTransformer.from_pretrained("gpt2")`` from the local hub cache, never the network.

The cache holds a tiny GPT-2 under TransformerLens's official name ``gpt2`` (the layout
huggingface_hub writes); the independent reference for every answer is the HuggingFace model of
the same snapshot run by transformers, and the weight processing recomputed by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import SENTENCES
from unembed import UnembedError, compare_logits
from unembed.cli import main
from unembed.sources.tlens import load_pretrained

COMMIT = "c" * 40


@pytest.fixture(scope="module")
def tl_cache(tmp_path_factory):
    """A hub cache holding ``models--gpt2`` (a tiny GPT-2 with the shared tokenizer; its
    config.json carries n_ctx as the real gpt2's does, which TransformerLens reads)."""
    from conftest import build_lm_dir
    from test_sources_hub_cache import _add_snapshot

    src = build_lm_dir(tmp_path_factory.mktemp("gpt2_src"), "gpt2", n_ctx=64)
    root = tmp_path_factory.mktemp("tl_home") / "hub"
    repo = root / "models--gpt2"
    snap = _add_snapshot(repo, COMMIT, src)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return root, snap


@pytest.fixture
def in_cache(tl_cache, monkeypatch):
    root, snap = tl_cache
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return root, snap


def _hf(snap: Path):
    import transformers as tf

    m = tf.AutoModelForCausalLM.from_pretrained(str(snap), local_files_only=True)
    return m.eval()


def _hf_log_probs(hf, ids: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        z = hf(torch.from_numpy(ids)).logits.double()
    return torch.log_softmax(z, -1).reshape(-1, z.shape[-1]).numpy()


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def test_by_name_with_transformer_lens_defaults(in_cache):
    """gpt2-small (an alias) -> the snapshot of gpt2; rows are the HF rows folded, projected off
    the ones vector and centred (TransformerLens's defaults), and the model's probabilities are
    the HuggingFace model's."""
    _, snap = in_cache
    lm = load_pretrained("gpt2-small")
    assert lm.kind == "transformer_lens" and lm.head.rows == "folded"
    p = lm.processing
    assert p.fold_ln and p.rows_off_ones and p.center_unembed and p.center_writing_weights
    meta = lm.head.meta
    assert meta["hub"]["commit"] == COMMIT and meta["transformer_lens"]["official_name"] == "gpt2"
    assert meta["transformer_lens"]["version"].startswith("3.")
    assert any("checked against the HuggingFace model" in n for n in meta["notes"])
    hf = _hf(snap)
    W = hf.lm_head.weight.detach().double().numpy()  # (V, d), tied to wte
    g = hf.transformer.ln_f.weight.detach().double().numpy()
    Wf = W * g
    Wf = Wf - Wf.mean(axis=1, keepdims=True)
    Wf = Wf - Wf.mean(axis=0, keepdims=True)
    assert np.abs(lm.head.W - Wf).max() < 1e-5
    ids = np.random.default_rng(0).integers(0, W.shape[0], size=(3, 9))
    h, z = lm.forward(ids)
    ref = _hf_log_probs(hf, ids)
    assert np.abs(_log_softmax(lm.head.logits(h)) - ref).max() < 1e-4
    assert compare_logits(ref, z, "softmax", dtype="float32").equivalent


def test_processing_switched_off_gives_the_stored_rows(in_cache):
    _, snap = in_cache
    lm = load_pretrained("gpt2", fold_ln=False, center_unembed=False,
                         center_writing_weights=False)
    p = lm.processing
    assert not (p.fold_ln or p.center_unembed or p.center_writing_weights)
    assert lm.head.rows == "stored" and p.normalization == "LN"
    hf = _hf(snap)
    assert np.array_equal(lm.head.W, hf.lm_head.weight.detach().double().numpy())


def test_names_and_options_are_checked_before_anything_loads(in_cache, tmp_path):
    root, _ = in_cache
    with pytest.raises(UnembedError, match="not a model name TransformerLens knows.*'gpt2'"):
        load_pretrained("gpt-2")
    with pytest.raises(UnembedError) as e:
        load_pretrained("gpt2-medium")  # in TransformerLens's table, not in this cache
    assert str(root / "models--gpt2-medium") in str(e.value) and "never downloads" in str(e.value)
    with pytest.raises(UnembedError, match="this is neither"):
        load_pretrained(str(tmp_path))  # a directory without config.json


@pytest.mark.parametrize(("extra", "message"), [
    (["--fold"], "--fold does not apply with --as transformer-lens"),
    (["--bias", "b.npy"], "--bias does not apply"),
    (["--device", "cuda"], "runs on the CPU here"),
])
def test_cli_refuses_options_that_mean_nothing_here(in_cache, capsys, extra, message):
    assert main(["inspect", "--model", "gpt2", "--as", "transformer-lens", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_processing_switches_need_as(capsys, tmp_path):
    np.save(tmp_path / "W.npy", np.eye(3))
    assert main(["inspect", str(tmp_path / "W.npy"), "--no-center-unembed"]) == 2
    assert "--no-center-unembed applies with --as transformer-lens" in capsys.readouterr().err


def test_cli_inspect_neighbours_counterexample_audit(in_cache, tmp_path, capsys):
    _, snap = in_cache
    tl = ["--model", "gpt2", "--as", "transformer-lens"]
    assert main(["inspect", *tl, "--no-fold-ln", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["rows"] == "stored"
    assert main(["neighbours", *tl, "#5", "-k", "3", "--view", "centered", "--json"]) == 0
    (got_nb,) = json.loads(capsys.readouterr().out)["neighbours"].values()
    # independent: the default processing's rows (folded, off ones, centred) from the HF
    # weights; the centered view of already centred rows is their plain cosine
    hf = _hf(snap)
    Wf = hf.lm_head.weight.detach().double().numpy() * \
        hf.transformer.ln_f.weight.detach().double().numpy()
    Wf = Wf - Wf.mean(axis=1, keepdims=True)
    Wf = Wf - Wf.mean(axis=0, keepdims=True)
    U = Wf / np.linalg.norm(Wf, axis=1, keepdims=True)
    cos = U @ U[5]
    cos[5] = -np.inf
    top = np.argsort(-cos)[:3]
    assert np.allclose([n["cosine"] for n in got_nb], cos[top], atol=1e-5)
    out = tmp_path / "W_U.safetensors"
    assert main(["counterexample", *tl, "--pair", "#5", "#6", "--target", "-1", "--out",
                 str(out), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert out.is_file() and rec["equivalence"]["equivalent"]
    # independent: the written state dict's W_U, read with safetensors, has the two rows at -1
    from safetensors.numpy import load_file

    W = load_file(str(out))["unembed.W_U"].astype(np.float64).T
    cos = W[5] @ W[6] / np.linalg.norm(W[5]) / np.linalg.norm(W[6])
    assert abs(cos + 1) < 1e-5
    data = tmp_path / "notes.txt"
    data.write_text("\n".join(SENTENCES * 3), encoding="utf-8")
    assert main(["audit", *tl, "--data", str(data), "--out", str(tmp_path / "aud"),
                 "--top-n", "10", "--no-progress", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    audit = json.loads(Path(res["json"]).read_text())
    assert audit["data"]["n_predictions"] > 0


def test_local_directory_converted_and_checked(tl_cache, capsys):
    """A fine-tuned model in a local directory, the way TransformerLens's own converters read a
    path; its conversion is checked against the HuggingFace model before it is read."""
    _, snap = tl_cache
    lm = load_pretrained(str(snap))
    assert lm.processing.fold_ln and lm.processing.center_unembed
    assert lm.head.meta["transformer_lens"]["official_name"] is None
    assert any("checked against the HuggingFace model" in n for n in lm.head.meta["notes"])
    hf = _hf(snap)
    ids = np.random.default_rng(5).integers(0, lm.head.n_labels, size=(2, 7))
    h, _ = lm.forward(ids)
    assert np.abs(_log_softmax(lm.head.logits(h)) - _hf_log_probs(hf, ids)).max() < 1e-4
    assert main(["inspect", "--model", str(snap), "--as", "transformer-lens", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == "folded"
    with pytest.raises(UnembedError, match="--revision applies to hub names"):
        load_pretrained(str(snap), revision="main")


def test_labels_rename_a_transformer_lens_model(in_cache, tmp_path, capsys):
    names = tmp_path / "names.txt"
    names.write_text("".join(f"t{i}\n" for i in range(300)), encoding="utf-8")
    lm = load_pretrained("gpt2", labels=str(names))
    assert lm.head.labels[:2] == ("t0", "t1") and lm.head.labels_from == str(names)
    assert main(["neighbours", "--model", "gpt2", "--as", "transformer-lens", "--labels",
                 str(names), "t7", "-k", "1", "--json"]) == 0
    assert "t7" in json.loads(capsys.readouterr().out)["neighbours"]


def test_subprocess_smoke(tl_cache, tmp_path):
    """The installed command, in a fresh process, offline: stdout is exactly one JSON object
    (TransformerLens's own "Loaded pretrained model" line does not leak into it)."""
    root, _ = tl_cache
    env = {**os.environ, "HF_HUB_CACHE": str(root), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-m", "unembed", "inspect", "--model", "gpt2-small",
                        "--as", "transformer-lens", "--json", "--no-progress"],
                       capture_output=True, text=True, env=env, timeout=240, check=False)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["rows"] == "folded" and "Traceback" not in r.stderr


# ---------------------------------------------------------------- TransformerLens's own format
NEEL = "NeelNanda/GELU_1L512W_C4_Code"  # TransformerLens's official name for "gelu-1l"


def _neel_model(tok_name: str | None):
    """A tiny HookedTransformer in the layout of TransformerLens's own-format models, with
    every parameter perturbed (so LayerNorms have real gains), and its config.json."""
    import warnings

    import torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg_json = {"d_model": 16, "n_layers": 1, "d_mlp": 32, "d_head": 8, "n_heads": 2,
                "n_ctx": 32, "d_vocab": 300, "tokenizer_name": tok_name, "act_fn": "gelu",
                "attn_only": False, "normalization_type": "LN"}
    cfg = HookedTransformerConfig(**{k: v for k, v in cfg_json.items()
                                     if k != "tokenizer_name"}, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        m = HookedTransformer(cfg)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return m.eval(), cfg_json


@pytest.fixture(scope="module")
def neel_cache(tmp_path_factory):
    """A hub cache with NEEL (config.json + model_final.pth) and its tokenizer repository."""
    import torch

    from conftest import make_tokenizer
    from test_sources_hub_cache import _add_snapshot

    root = tmp_path_factory.mktemp("neel_home") / "hub"
    src = tmp_path_factory.mktemp("neel_src")
    m, cfg_json = _neel_model("tiny-org/tok")
    (src / "config.json").write_text(json.dumps(cfg_json))
    torch.save(m.state_dict(), src / "model_final.pth")
    for repo_id, files in ((NEEL, src), ("tiny-org/tok", None)):
        repo = root / ("models--" + repo_id.replace("/", "--"))
        if files is None:
            files = tmp_path_factory.mktemp("tok_src")
            make_tokenizer().save_pretrained(files)
        _add_snapshot(repo, COMMIT, files)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(COMMIT)
    return root, m


def test_own_format_model_by_alias(neel_cache, monkeypatch):
    import torch

    root, original = neel_cache
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    lm = load_pretrained("gelu-1l")
    assert lm.head.meta["transformer_lens"]["official_name"] == NEEL
    assert lm.processing.fold_ln and lm.processing.center_unembed
    # the tokenizer came from the cache too: row i is token i of its vocabulary
    tok_json = next((root / "models--tiny-org--tok" / "snapshots" / COMMIT)
                    .glob("tokenizer.json"))
    vocab = json.loads(tok_json.read_text())["model"]["vocab"]
    word = next(t for t in sorted(vocab) if t.startswith("Ġ") and len(t) > 2)
    assert lm.head.labels[vocab[word]] == " " + word[1:]
    # independent: the saved (unprocessed) model's own log-probs, and its rows processed by hand
    ids = np.random.default_rng(2).integers(0, 300, size=(2, 9))
    with torch.no_grad():
        ref = torch.log_softmax(original(torch.from_numpy(ids)).double(), -1)
    ref = ref.reshape(-1, 300).numpy()
    h, z = lm.forward(ids)
    assert np.abs(_log_softmax(lm.head.logits(h)) - ref).max() < 1e-4
    assert np.abs(_log_softmax(z) - ref).max() < 1e-4
    W = original.W_U.detach().double().numpy().T * original.ln_final.w.detach().double().numpy()
    W = W - W.mean(axis=1, keepdims=True)
    W = W - W.mean(axis=0, keepdims=True)
    assert np.abs(lm.head.W - W).max() < 1e-5


def test_own_format_state_dict_is_never_unpickled(neel_cache, tmp_path, monkeypatch):
    """A *final.pth holding more than tensors is refused (TransformerLens would unpickle it);
    without the tokenizer in the cache the rows are numbered and that is said."""
    import shutil

    import torch

    root, _ = neel_cache
    other = tmp_path / "hub"
    shutil.copytree(root, other, symlinks=True)
    snap = other / ("models--" + NEEL.replace("/", "--")) / "snapshots" / COMMIT
    shutil.rmtree(other / "models--tiny-org--tok")
    monkeypatch.setenv("HF_HUB_CACHE", str(other))
    lm = load_pretrained("gelu-1l", fold_ln=False)
    assert any("not in the hub cache" in n for n in lm.head.meta["notes"])
    assert lm.head.labels[:3] == ("0", "1", "2") and lm.head.rows == "stored"
    (snap / "model_final.pth").unlink()
    torch.save({"W": torch.zeros(2), "f": Path("x")}, snap / "model_final.pth")
    with pytest.raises(UnembedError, match="weights_only=True"):
        load_pretrained("gelu-1l")


def test_model_dtype_bfloat16(in_cache):
    """--model-dtype bfloat16: TransformerLens and the reference HuggingFace model both in
    bfloat16, the conversion checked at bfloat16's tolerance; the head is the bfloat16 weights."""
    lm = load_pretrained("gpt2", dtype="bfloat16", center_unembed=False)
    assert lm.dtype == "bfloat16" and lm.head.dtype == "bfloat16"
    assert any("checked against the HuggingFace model" in n for n in lm.head.meta["notes"])
    with pytest.raises(UnembedError, match="not a torch dtype"):
        load_pretrained("gpt2", dtype="float13")


# ---------------------------------------------------------------- state dicts written by counterexample
TL = ["--model", "gpt2", "--as", "transformer-lens"]


@pytest.fixture(scope="module")
def written(tl_cache, tmp_path_factory):
    """``counterexample --model gpt2 --as transformer-lens --out neg.safetensors``, once: the
    state dict and its config beside it (pair #5, #6 at cosine -1)."""
    root, _ = tl_cache
    out = tmp_path_factory.mktemp("tl_written") / "neg.safetensors"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_CACHE", str(root))
        mp.setenv("HF_HUB_OFFLINE", "1")
        assert main(["counterexample", *TL, "--pair", "#5", "#6", "--target", "-1", "--out",
                     str(out), "--no-progress", "--json"]) == 0
    return out


def _by_hand(state_dict: Path, config: Path):
    """The two files as a TransformerLens user loads them, without unembed:
    ``HookedTransformer(HookedTransformerConfig.from_dict(cfg))`` and ``load_state_dict``."""
    import warnings

    import torch
    from safetensors.torch import load_file
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    fields = json.loads(config.read_text())["config"]
    fields.update(dtype=getattr(torch, fields["dtype"]), tokenizer_name=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        m = HookedTransformer(HookedTransformerConfig.from_dict(fields))
    sd = (load_file(str(state_dict)) if state_dict.suffix == ".safetensors"
          else torch.load(state_dict, weights_only=True))
    m.load_state_dict(sd)
    return m.eval()


def _tl_log_probs(m, ids: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        z = m(torch.from_numpy(ids)).double()
    return torch.log_softmax(z, -1).reshape(-1, z.shape[-1]).numpy()


def _pair(d: Path, stem: str, sd: dict, config: dict) -> Path:
    """A state dict ``d/stem.safetensors`` and the config ``d/stem.tl_config.json``."""
    from safetensors.torch import save_file

    save_file(sd, str(d / f"{stem}.safetensors"))
    (d / f"{stem}.tl_config.json").write_text(json.dumps(config), encoding="utf-8")
    return d / f"{stem}.safetensors"


def test_verify_reads_what_counterexample_wrote(in_cache, written, tmp_path, capsys):
    """verify --model gpt2 --as transformer-lens --model2 OUT: equivalent, on the inputs given;
    independently, the two files loaded by TransformerLens by hand give the HuggingFace model's
    probabilities, and the written rows are the processed rows translated, the pair at -1."""
    _, snap = in_cache
    config = written.with_name("neg.tl_config.json")
    assert sorted(p.name for p in written.parent.iterdir()) == [written.name, config.name]
    ids = np.random.default_rng(7).integers(0, 300, size=(4, 12))
    np.save(tmp_path / "ids.npy", ids)
    assert main(["verify", *TL, "--model2", str(written), "--data", str(tmp_path / "ids.npy"),
                 "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["equivalent"] and rec["n_inputs"] == 48 and rec["dtype"] == "float32"
    assert rec["max_abs_dp"] <= 1e-4 and rec["second"] == str(written)
    hand = _by_hand(written, config)
    got, ref = _tl_log_probs(hand, ids), _hf_log_probs(_hf(snap), ids)
    assert np.abs(got - ref).max() < 1e-4
    assert np.abs(np.exp(got) - np.exp(ref)).max() < 1e-5
    W = hand.W_U.detach().double().numpy().T
    assert abs(W[5] @ W[6] / np.linalg.norm(W[5]) / np.linalg.norm(W[6]) + 1) < 1e-5
    hf = _hf(snap)
    Wf = hf.lm_head.weight.detach().double().numpy() * \
        hf.transformer.ln_f.weight.detach().double().numpy()
    Wf = Wf - Wf.mean(axis=1, keepdims=True)
    Wf = Wf - Wf.mean(axis=0, keepdims=True)
    shift = W - Wf  # one translation c for every row
    assert np.abs(shift - shift.mean(axis=0)).max() < 1e-5 and np.linalg.norm(shift[0]) > 1e-2
    # and in the other order, random inputs: the state dict as the first model
    assert main(["verify", "--model", str(written), "--as", "transformer-lens", "--model2",
                 "gpt2"]) == 0
    assert "EQUIVALENT" in capsys.readouterr().out


def test_verify_says_not_equivalent_when_the_weights_differ(in_cache, written, tmp_path,
                                                            capsys):
    """A state dict with W_U scaled by 3 (a sharper model), its config unchanged: exit 1, and
    max |dp| is the one of the HuggingFace model against the tampered files loaded by hand."""
    from safetensors.torch import load_file

    _, snap = in_cache
    sd = load_file(str(written))
    sd["unembed.W_U"] = sd["unembed.W_U"] * 3
    config = json.loads(written.with_name("neg.tl_config.json").read_text())
    sharp = _pair(tmp_path, "sharp", sd, config)
    ids = np.random.default_rng(8).integers(0, 300, size=(3, 10))
    np.save(tmp_path / "ids.npy", ids)
    assert main(["verify", *TL, "--model2", str(sharp), "--data", str(tmp_path / "ids.npy"),
                 "--json"]) == 1
    rec = json.loads(capsys.readouterr().out)
    assert not rec["equivalent"] and rec["n_inputs"] == 30
    p_hf = np.exp(_hf_log_probs(_hf(snap), ids))
    p_sharp = np.exp(_tl_log_probs(_by_hand(sharp, sharp.with_name("sharp.tl_config.json")),
                                   ids))
    dp = np.abs(p_hf - p_sharp).max()
    assert dp > 1e-2 and abs(rec["max_abs_dp"] - dp) < 1e-5


def _tamper(config: dict, case: str) -> object:
    c = json.loads(json.dumps(config))
    if case == "d_vocab":
        c["config"]["d_vocab"] = 301
        c["config"]["d_vocab_out"] = 301
    elif case == "normalization":
        c["config"]["normalization_type"] = "LN"
    elif case == "dtype":
        c["config"]["dtype"] = "float16"
    elif case == "foreign":
        return c["config"]  # a bare HookedTransformerConfig dict: not ours, no "format"
    elif case == "unknown field":
        c["config"]["n_wings"] = 2
    elif case == "missing field":
        del c["config"]["d_vocab"]
    return c


@pytest.mark.parametrize(("case", "message"), [
    ("missing", "a TransformerLens state dict holds no architecture, and its config "
                "bad.tl_config.json"),
    ("d_vocab", "bad.tl_config.json: its config's d_vocab is 301, but the state dict's "
                "embed.W_E (axis 0) shows 300; refused before building the model"),
    ("normalization", "does not fit its config bad.tl_config.json: the config's model has "
                      "'blocks.0.ln1.w', which the state dict lacks"),
    ("dtype", "is stored as float32, the config says float16"),
    ("foreign", "not a config unembed wrote beside a TransformerLens state dict"),
    ("unknown field", "its config has the field 'n_wings', which a HookedTransformerConfig "
                      "does not have"),
    ("missing field", "its config lacks the field 'd_vocab'"),
    ("not json", "invalid JSON"),
])
def test_verify_refuses_a_state_dict_without_its_config(in_cache, written, tmp_path, capsys,
                                                       case, message):
    """The config missing, foreign or disagreeing with the weights: one line naming the file,
    exit 2, nothing on stdout, nothing written."""
    import shutil

    bad = tmp_path / "bad.safetensors"
    shutil.copy(written, bad)
    config = json.loads(written.with_name("neg.tl_config.json").read_text())
    cfile = tmp_path / "bad.tl_config.json"
    if case == "not json":
        cfile.write_text("{\"format\": ", encoding="utf-8")
    elif case != "missing":
        cfile.write_text(json.dumps(_tamper(config, case)), encoding="utf-8")
    before = sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.iterdir())
    assert main(["verify", *TL, "--model2", str(bad)]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err.count("\n") == 1 and "Traceback" not in cap.err
    assert cap.err.startswith("unembed verify: error: ") and message in cap.err
    assert str(tmp_path) in cap.err
    assert sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.iterdir()) == before
    assert main(["verify", *TL, "--model2", str(bad), "--json"]) == 2
    err = json.loads(capsys.readouterr().out)
    assert err["exit_code"] == 2 and message in err["error"]


def test_counterexample_refuses_before_it_writes(in_cache, written, tmp_path, capsys):
    """An existing config at the target (without --force) or a suffix that is no state dict
    format: one line, exit 2, nothing written; with --force both files are replaced, as .pt."""
    cfile = tmp_path / "neg.tl_config.json"
    cfile.write_text("mine\n", encoding="utf-8")
    args = ["counterexample", *TL, "--pair", "#5", "#6", "--target", "-1", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "neg.pt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{cfile}: already exists; pass --force" in err
    assert main([*args, "--out", str(tmp_path / "neg.npy")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "written as a state dict: use a .safetensors or .pt" in err
    assert [p.name for p in tmp_path.iterdir()] == [cfile.name]
    assert cfile.read_text() == "mine\n"
    assert main([*args, "--out", str(tmp_path / "neg.pt"), "--force", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert any("neg.tl_config.json" in n for n in rec["export"]["notes"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["neg.pt", cfile.name]
    assert json.loads(cfile.read_text())["config"]["d_vocab"] == 300
    # the .pt and the .safetensors written from the same model hold the same weights
    import torch
    from safetensors.torch import load_file

    a, b = torch.load(tmp_path / "neg.pt", weights_only=True), load_file(str(written))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert main(["verify", *TL, "--model2", str(tmp_path / "neg.pt")]) == 0
    capsys.readouterr()


def test_a_state_dict_is_read_as_written(in_cache, written, tmp_path, capsys):
    """Processing switches and --revision mean nothing for a state dict file: refused; without
    --as transformer-lens the file says what it is; a written state dict is a model again: a
    second counterexample from it verifies against the original gpt2."""
    for extra, option in ((["--no-fold-ln"], "--no-fold-ln"), (["--revision", "main"],
                                                                "--revision")):
        assert main(["inspect", "--model", str(written), "--as", "transformer-lens",
                     *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{option} does not apply to a state dict file" in err
    assert main(["inspect", str(written)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "read the model with --as transformer-lens" in err
    assert main(["inspect", "--model", str(written), "--as", "transformer-lens", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["rows"] == "folded"
    again = tmp_path / "again.pt"
    as_tl = ["--model", str(written), "--as", "transformer-lens"]
    assert main(["counterexample", *as_tl, "--pair", "#7", "#8", "--target", "0.5", "--out",
                 str(again), "--no-progress", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verification"]["equivalent"]
    assert main(["verify", *TL, "--model2", str(again)]) == 0
    assert "EQUIVALENT" in capsys.readouterr().out
    assert main(["counterexample", *as_tl, "--keep-cosines", "--unargmaxable", "#7", "--out",
                 str(tmp_path / "k.pt")]) == 2
    assert "--keep-cosines works on a weight file" in capsys.readouterr().err
