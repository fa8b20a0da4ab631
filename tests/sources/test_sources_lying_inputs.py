"""Inputs that lie: model directories that are not what they seem, files whose contents
disagree with their headers, paths that lead out of a model directory.

Every model here is built in-process (tiny real transformers models); every answer that is
not a refusal is checked against the model run directly with torch.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from unembed import load
from unembed._checks import UnembedError, unique_labels
from unembed.sources.files import read_labels, read_tensor, torch_load


def _cfg(d: Path) -> dict[str, Any]:
    return json.loads((d / "config.json").read_text())


def _write_cfg(d: Path, cfg: dict[str, Any]) -> None:
    (d / "config.json").write_text(json.dumps(cfg))


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------ classifiers
@pytest.fixture(scope="module")
def gpt2_seqcls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import transformers as tf

    from conftest import _perturb, make_tokenizer

    d = tmp_path_factory.mktemp("seqcls")
    tok = make_tokenizer()
    cfg = tf.GPT2Config(n_embd=16, n_layer=1, n_head=2, n_positions=64, vocab_size=len(tok),
                        num_labels=3, id2label={0: "neg", 1: "neu", 2: "pos"},
                        label2id={"neg": 0, "neu": 1, "pos": 2}, pad_token_id=0)
    torch.manual_seed(0)
    m = tf.GPT2ForSequenceClassification(cfg)
    _perturb(m, 0)
    m.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_sequence_classifier_is_read_as_its_classifier(gpt2_seqcls: Path) -> None:
    """GPT2ForSequenceClassification: the head is `score` with id2label, never the token
    embedding; the model's own logits (read at the last token) equal head.logits(h)."""
    import transformers as tf

    m = load(gpt2_seqcls)
    assert m.kind == "hf_classifier" and m.head.labels == ("neg", "neu", "pos")
    ref = tf.GPT2ForSequenceClassification.from_pretrained(gpt2_seqcls).eval()
    np.testing.assert_array_equal(m.head.W, ref.score.weight.detach().double().numpy())
    ids = np.random.default_rng(1).integers(1, 200, size=(3, 7))
    h, z = m.forward(ids)
    with torch.no_grad():
        want = np.concatenate([ref(input_ids=torch.as_tensor(r[None, :])).logits.double().numpy()
                               for r in ids])
    np.testing.assert_allclose(z, want, rtol=1e-6, atol=1e-6)
    # independent: the last position's final hidden state times the score matrix
    with torch.no_grad():
        hs = [ref.transformer(input_ids=torch.as_tensor(r[None, :])).last_hidden_state[0, -1]
              .double().numpy() for r in ids]
    np.testing.assert_allclose(h, np.stack(hs), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.stack(hs) @ m.head.W.T, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(UnembedError, match="no final norm right before its classifier"):
        load(gpt2_seqcls, fold=True)


def test_token_classifier_and_counterexample_keeps_the_classifier(gpt2_seqcls: Path,
                                                                   tmp_path: Path) -> None:
    import transformers as tf

    from unembed.construct import translation_for_cosine
    from unembed.export import export_model

    cfg = tf.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, num_labels=4,
                        max_position_embeddings=32)
    torch.manual_seed(0)
    tf.BertForTokenClassification(cfg).save_pretrained(tmp_path / "tok")
    m = load(tmp_path / "tok")
    assert m.kind == "hf_classifier" and m.head.n_labels == 4
    ids = np.arange(1, 9)[None, :]
    h, z = m.forward(ids)
    assert h.shape == (8, 16) and z.shape == (8, 4)
    np.testing.assert_allclose(m.head.logits(h), z, rtol=1e-5, atol=1e-5)
    # the written model keeps its classifier and is equivalent; the pair's cosine is moved
    sc = load(gpt2_seqcls)
    res = translation_for_cosine(sc.head, "neg", "pos", -0.5)
    r = export_model(sc, res.head, tmp_path / "out")
    assert r.equivalence.equivalent and r.kind == "hf_classifier"
    back = load(tmp_path / "out")
    i, j = back.head.index("neg"), back.head.index("pos")
    w = back.head.W
    assert w[i] @ w[j] / np.linalg.norm(w[i]) / np.linalg.norm(w[j]) == pytest.approx(-0.5,
                                                                                        abs=1e-5)


# ------------------------------------------------------------------ directories that lie
def test_config_and_weights_disagree_one_line(tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    d = _copy(tiny_gpt2_dir, tmp_path / "d")
    cfg = _cfg(d)
    v = cfg["vocab_size"]
    _write_cfg(d, {**cfg, "vocab_size": v + 7})
    with pytest.raises(UnembedError) as e:
        load(d)
    assert f"vocab_size {v + 7}" in str(e.value) and f"{v} rows" in str(e.value)
    _write_cfg(d, {**cfg, "n_embd": 32})
    with pytest.raises(UnembedError, match="hidden_size 32.*16 columns"):
        load(d)


def test_gpt2_weights_under_another_model_type_are_refused(tiny_gpt2_dir: Path,
                                                          tmp_path: Path) -> None:
    """No head of a randomly initialised model is ever returned."""
    d = _copy(tiny_gpt2_dir, tmp_path / "d")
    cfg = _cfg(d)
    _write_cfg(d, {**cfg, "model_type": "bert"})
    with pytest.raises(UnembedError, match="model_type 'bert' but architectures names "
                                           "GPT2LMHeadModel"):
        load(d)
    _write_cfg(d, {**cfg, "model_type": "bert", "architectures": ["BertLMHeadModel"],
                   "hidden_size": 16, "num_attention_heads": 2, "num_hidden_layers": 1,
                   "intermediate_size": 32, "is_decoder": True})
    with pytest.raises(UnembedError, match="lacks .* weights .* at random"):
        load(d)


def test_legacy_torch_checkpoint_is_read_safely(tiny_llama_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    d = tmp_path / "legacy"
    d.mkdir()
    for f in tiny_llama_dir.iterdir():
        if f.name != "model.safetensors":
            shutil.copy(f, d / f.name)
    state = load_file(tiny_llama_dir / "model.safetensors")
    torch.save(state, d / "pytorch_model.bin", _use_new_zipfile_serialization=False)
    assert not __import__("zipfile").is_zipfile(d / "pytorch_model.bin")
    m = load(d)
    np.testing.assert_array_equal(m.head.W, state["lm_head.weight"].double().numpy())
    torch.save({"w": state["lm_head.weight"]}, tmp_path / "w.pt",
               _use_new_zipfile_serialization=False)
    mf = read_tensor(tmp_path / "w.pt")
    np.testing.assert_array_equal(mf.array, state["lm_head.weight"].numpy())


def test_invalid_config_json_says_where(tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    d = _copy(tiny_gpt2_dir, tmp_path / "d")
    (d / "config.json").write_text('{\n  "model_type": "gpt2",\n  "n_embd": 16,,\n}')
    with pytest.raises(UnembedError, match=r"config.json: invalid JSON at line 3 column 16"):
        load(d)
    (d / "config.json").write_bytes(b'{"model_type": "gpt2\xff"}')
    with pytest.raises(UnembedError, match=r"not UTF-8 text \(byte 0xff"):
        load(d)


@pytest.mark.parametrize("key,value", [
    ("vocab_size", ""), ("vocab_size", []), ("vocab_size", None), ("n_embd", 0),
    ("n_layer", 1.5), ("layer_norm_epsilon", -1), ("torch_dtype", "float8"),
    ("model_type", ""), ("architectures", "GPT2LMHeadModel"), ("logit_scale", 0),
    ("final_logit_softcapping", {"a": 1}), ("tie_word_embeddings", "yes"),
    ("id2label", [1, 2]), ("auto_map", {"AutoModelForCausalLM": "x.Model"}),
])
def test_config_values_of_wrong_type_or_range(tiny_gpt2_dir: Path, tmp_path: Path, key: str,
                                              value: Any) -> None:
    d = _copy(tiny_gpt2_dir, tmp_path / "d")
    _write_cfg(d, {**_cfg(d), key: value})
    with pytest.raises(UnembedError, match=f"'{key}'|auto_map") as e:
        load(d)
    assert "\n" not in str(e.value) and "weights_only=False" not in str(e.value)
    if key == "auto_map":
        assert "--trust-remote-code" in str(e.value)


def test_nan_in_config_is_invalid_json(tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    d = _copy(tiny_gpt2_dir, tmp_path / "d")
    text = json.dumps({**_cfg(d), "layer_norm_epsilon": 0.5}).replace("0.5", "NaN")
    (d / "config.json").write_text(text)
    with pytest.raises(UnembedError, match="invalid JSON: NaN"):
        load(d)


# ------------------------------------------------------------------ sharded checkpoints
def _sharded(tiny_llama_dir: Path, d: Path) -> dict[str, Any]:
    from safetensors.torch import load_file, save_file

    d.mkdir()
    for f in tiny_llama_dir.iterdir():
        if f.name != "model.safetensors":
            shutil.copy(f, d / f.name)
    state = load_file(tiny_llama_dir / "model.safetensors")
    names = sorted(state)
    half = len(names) // 2
    save_file({k: state[k] for k in names[:half]}, d / "a.safetensors")
    save_file({k: state[k] for k in names[half:]}, d / "b.safetensors")
    wm = {k: ("a.safetensors" if i < half else "b.safetensors") for i, k in enumerate(names)}
    (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": wm}))
    return wm


def test_index_that_leads_outside_is_refused_before_opening(tiny_llama_dir: Path,
                                                            tmp_path: Path) -> None:
    d = tmp_path / "d"
    wm = _sharded(tiny_llama_dir, d)
    assert np.array_equal(load(d).head.W, load(tiny_llama_dir).head.W)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.mkfifo(outside / "x.safetensors")  # opening it for reading would block this test
    for target in ("../elsewhere/x.safetensors", str(outside / "x.safetensors")):
        (d / "model.safetensors.index.json").write_text(json.dumps(
            {"weight_map": {**wm, "lm_head.weight": target}}))
        with pytest.raises(UnembedError, match="not a path inside the directory"):
            load(d)
    os.symlink(outside / "x.safetensors", d / "c.safetensors")
    (d / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {**wm, "lm_head.weight": "c.safetensors"}}))
    with pytest.raises(UnembedError, match="leads outside the directory"):
        load(d)
    os.unlink(d / "c.safetensors")
    os.symlink("/dev/zero", d / "c.safetensors")
    with pytest.raises(UnembedError, match="leads outside the directory"):
        load(d)


def test_index_of_wrong_shape_or_lying_about_its_shards(tiny_llama_dir: Path,
                                                        tmp_path: Path) -> None:
    d = tmp_path / "d"
    wm = _sharded(tiny_llama_dir, d)
    idx = d / "model.safetensors.index.json"
    for bad in ('{"weight_map": []}', "null", "[]", '{"weight_map": {"lm_head.weight": 3}}'):
        idx.write_text(bad)
        with pytest.raises(UnembedError, match="index"):
            load(d)
    other = "b.safetensors" if wm["lm_head.weight"] == "a.safetensors" else "a.safetensors"
    idx.write_text(json.dumps({"weight_map": {**wm, "lm_head.weight": other}}))
    with pytest.raises(UnembedError, match="says this shard holds 'lm_head.weight', but it "
                                           "does not"):
        load(d)


def test_fifo_in_a_model_directory_is_refused(tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    d = _copy(tiny_gpt2_dir, tmp_path / "d")
    (d / "model.safetensors").unlink()
    os.mkfifo(d / "model.safetensors")
    with pytest.raises(UnembedError, match="not a regular file"):
        load(d)


# ------------------------------------------------------------------ files that lie
def _safetensors_bytes(header: str, data: bytes) -> bytes:
    h = header.encode()
    return struct.pack("<Q", len(h)) + h + data


def test_duplicate_tensor_names_in_safetensors_header(tmp_path: Path) -> None:
    data = np.arange(12, dtype=np.float32).tobytes()
    def entry(a: int, b: int) -> str:
        return '{"dtype": "F32", "shape": [3, 2], "data_offsets": [' + f"{a}, {b}]}}"

    header = '{"w": ' + entry(0, 24) + ', "w": ' + entry(24, 48) + "}"
    (tmp_path / "dup.safetensors").write_bytes(_safetensors_bytes(header, data))
    with pytest.raises(UnembedError, match="names the tensor 'w' twice"):
        read_tensor(tmp_path / "dup.safetensors")
    header = '{"w": ' + entry(0, 4800) + "}"
    (tmp_path / "far.safetensors").write_bytes(_safetensors_bytes(header, data))
    with pytest.raises(UnembedError, match="does not locate its bytes inside the file"):
        read_tensor(tmp_path / "far.safetensors")


def test_legacy_torch_storage_larger_than_its_file(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A legacy torch file whose storage declares more elements than the file holds: one
    line naming the file, the counts and the bytes (never torch's unfilled "%ld"), from the
    API and from the CLI (exit 2, no traceback)."""
    from unembed.cli import main

    W = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    torch.save({"w": W}, tmp_path / "ok.pt", _use_new_zipfile_serialization=False)
    raw = (tmp_path / "ok.pt").read_bytes()
    # the legacy layout ends with: int64 element count, then the 12 x 4 bytes of W
    at = len(raw) - 48 - 8
    assert struct.unpack("<q", raw[at:at + 8]) == (12,)
    assert raw[at + 8:] == W.numpy().tobytes()
    big = raw[:at] + struct.pack("<q", 12 * 10**9) + raw[at + 8:]
    (tmp_path / "big.pt").write_bytes(big)
    (tmp_path / "short.pt").write_bytes(raw[:-8])
    with pytest.raises(UnembedError) as e:
        read_tensor(tmp_path / "big.pt")
    msg = str(e.value)
    assert "%" not in msg and "\n" not in msg
    assert msg.startswith(f"{tmp_path / 'big.pt'}: ") and "12 elements" in msg
    assert "12000000000" in msg
    with pytest.raises(UnembedError) as e:
        read_tensor(tmp_path / "short.pt")
    assert "12 elements of 4 bytes" in str(e.value) and "only 40 bytes" in str(e.value)
    np.testing.assert_array_equal(read_tensor(tmp_path / "ok.pt").array, W.numpy())
    # a zip checkpoint whose tensor claims 600 x 4 elements of a 12-element record
    torch.save({"w": W}, tmp_path / "zip.pt")
    with zipfile.ZipFile(tmp_path / "zip.pt") as zin, \
            zipfile.ZipFile(tmp_path / "zipbig.pt", "w") as zout:
        for info in zin.infolist():
            blob = zin.read(info)
            if info.filename.endswith("data.pkl"):
                assert blob.count(b"K\x03K\x04") == 1  # BININT1 3, BININT1 4: the shape
                blob = blob.replace(b"K\x03K\x04", b"MX\x02K\x04")  # BININT2 600
            zout.writestr(info, blob)
    for mmap in (False, True):
        with pytest.raises(UnembedError, match=r"zipbig\.pt: .*(record|elements)") as e:
            torch_load(tmp_path / "zipbig.pt", mmap=mmap)
        assert "resiz" not in str(e.value) and "%" not in str(e.value)
    for name in ("big.pt", "short.pt", "zipbig.pt"):
        code = main(["inspect", str(tmp_path / name)])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert name in err and "elements" in err and "Traceback" not in err, err


def test_npy_whose_header_disagrees_with_its_size(tmp_path: Path) -> None:
    W = np.random.default_rng(0).standard_normal((5, 3))
    np.save(tmp_path / "w.npy", W)
    raw = (tmp_path / "w.npy").read_bytes()
    (tmp_path / "long.npy").write_bytes(raw + b"\0" * 24)
    with pytest.raises(UnembedError, match=r"header says shape \(5, 3\).*holds 144"):
        read_tensor(tmp_path / "long.npy")
    (tmp_path / "short.npy").write_bytes(raw[:-24])
    with pytest.raises(UnembedError, match="holds 96; truncated or padded"):
        read_tensor(tmp_path / "short.npy")
    np.testing.assert_array_equal(read_tensor(tmp_path / "w.npy").array, W)


def test_void_arrays_are_not_data_and_multi_disk_zip_is_not_a_checkpoint(
        tmp_path: Path, tiny_gpt2_dir: Path) -> None:
    from unembed.behaviour import ArrayInputs
    from unembed.sources.files import read_npy

    np.save(tmp_path / "v.npy", np.zeros((4, 3), dtype="V8"))
    with pytest.raises(UnembedError, match="structured or void"):
        read_npy(tmp_path / "v.npy", numeric=True)
    with pytest.raises(UnembedError, match="v.npy"):
        ArrayInputs(tmp_path / "v.npy")
    # an end-of-central-directory record that claims a second disk
    eocd = b"PK\x05\x06" + struct.pack("<HHHHIIH", 1, 1, 0, 0, 0, 0, 0)
    loc64 = b"PK\x06\x07" + struct.pack("<IQI", 0, 0, 2)
    (tmp_path / "m.pt").write_bytes(b"\0" * 64 + loc64 + eocd)
    with pytest.raises(UnembedError, match="m.pt: not a readable torch file"):
        read_tensor(tmp_path / "m.pt")


def test_text_that_is_not_utf8(tmp_path: Path, tiny_gpt2_dir: Path) -> None:
    from unembed.behaviour import open_data

    (tmp_path / "labels.txt").write_bytes(b"cat\ndog\n\xff\xfe\n")
    with pytest.raises(UnembedError, match=r"labels.txt: not UTF-8 text \(byte 0xff at "
                                           r"offset 8, line 3\)"):
        read_labels(tmp_path / "labels.txt")
    m = load(tiny_gpt2_dir)
    for name in ("d.txt", "d.jsonl"):
        (tmp_path / name).write_bytes(b'{"text": "the cat"}\n' + b"\xc3\x28 sat\n")
        data = open_data(tmp_path / name, m, window=2)
        with pytest.raises(UnembedError, match=f"{name}: not UTF-8 text"):
            list(data.batches(4))


def test_unique_labels() -> None:
    from unembed import Head

    assert unique_labels(["sr", "hr", "sr", "sr#2", "sr"]) == ("sr", "hr", "sr#3", "sr#2",
                                                              "sr#4")
    W = np.random.default_rng(0).standard_normal((3, 2))
    with pytest.raises(UnembedError, match="--unique-labels"):
        Head(W, labels=["sr", "hr", "sr"])


def test_files_named_by_tokenizer_config_or_an_index_transformers_would_follow(
        tiny_gpt2_dir: Path, tiny_llama_dir: Path, tmp_path: Path) -> None:
    """Paths that transformers itself would open (tokenizer files named in
    tokenizer_config.json, shards of an index) are checked before transformers runs."""
    from unembed.sources.hf_dir import from_pretrained, transformers_module

    d = _copy(tiny_gpt2_dir, tmp_path / "d")
    tc = json.loads((d / "tokenizer_config.json").read_text())
    (d / "tokenizer_config.json").write_text(json.dumps({**tc, "vocab_file": "/etc/passwd"}))
    with pytest.raises(UnembedError, match="'vocab_file' names '/etc/passwd'"):
        load(d)
    s = tmp_path / "s"
    wm = _sharded(tiny_llama_dir, s)
    (s / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {**wm, "lm_head.weight": "../elsewhere.safetensors"}}))
    tf = transformers_module()
    with pytest.raises(UnembedError, match="not a path inside the directory"):
        from_pretrained(tf.AutoModelForCausalLM, s, "a causal LM")
