"""Hub names read from the local HuggingFace cache (no network, never a download).

The cache is laid out as huggingface_hub lays it (blobs named by hash, snapshots of links into
them, refs naming commits) in a temporary directory, with a tiny GPT-2 saved in-process; the
independent check is transformers' own offline resolution of the same name.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from unembed import UnembedError, load
from unembed.cli import main
from unembed.sources.hub_cache import hub_cache_dir, resolve

COMMIT_A = "a" * 40
COMMIT_B = "0123456789abcdef0123456789abcdef01234567"


def _add_snapshot(repo: Path, commit: str, files_from: Path) -> Path:
    """Put the files of ``files_from`` into ``repo`` as a snapshot of links into blobs/."""
    blobs = repo / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in files_from.iterdir():
        data = f.read_bytes()
        blob = blobs / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snap), snap / f.name)
    return snap


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory, tiny_lm_dir):
    """A hub cache with ``tiny-org/tiny-gpt2``: main -> commit A (GPT-2, seed 0), tag v2 ->
    commit B (another GPT-2, seed 1)."""
    from conftest import build_lm_dir

    root = tmp_path_factory.mktemp("hf_home") / "hub"
    repo = root / "models--tiny-org--tiny-gpt2"
    _add_snapshot(repo, COMMIT_A, tiny_lm_dir("gpt2"))
    other = build_lm_dir(tmp_path_factory.mktemp("gpt2_seed1"), "gpt2", seed=1)
    _add_snapshot(repo, COMMIT_B, other)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT_A)
    (repo / "refs" / "v2").write_text(COMMIT_B + "\n")
    return root


@pytest.fixture
def in_cache(hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return hub_cache


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub_cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "c"))
    assert hub_cache_dir() == tmp_path / "c"


@pytest.mark.parametrize(("revision", "commit"), [(None, COMMIT_A), ("main", COMMIT_A),
                                                  ("v2", COMMIT_B), (COMMIT_B, COMMIT_B)])
def test_name_opens_the_snapshot_transformers_opens(in_cache, revision, commit):
    import torch
    import transformers as tf

    m = load("tiny-org/tiny-gpt2", revision=revision)
    assert m.kind == "hf_lm"
    assert m.head.meta["hub"]["commit"] == commit
    assert m.head.meta["hub"]["snapshot"] == str(in_cache / "models--tiny-org--tiny-gpt2"
                                                 / "snapshots" / commit)
    # independent: transformers resolves the same name offline, from the same cache
    ref = tf.AutoModelForCausalLM.from_pretrained("tiny-org/tiny-gpt2", revision=revision,
                                                  local_files_only=True, cache_dir=in_cache)
    ids = np.array([[1, 5, 9, 2, 7]])
    with torch.no_grad():
        out = ref(torch.from_numpy(ids), output_hidden_states=True)
    h = out.hidden_states[-1][0].double().numpy()
    z = out.logits[0].double().numpy()
    assert np.abs(m.head.logits(h) - z).max() < 1e-4
    assert np.abs(m.model_logits(ids) - z).max() < 1e-4
    assert m.head.labels[5] == m.tokenizer.convert_ids_to_tokens(5).replace("Ġ", " ")


def test_missing_name_says_where_it_looked(in_cache):
    with pytest.raises(UnembedError) as e:
        load("tiny-org/absent-model")
    msg = str(e.value)
    assert "\n" not in msg and "never downloads" in msg
    assert str(in_cache / "models--tiny-org--absent-model") in msg


def test_unknown_revision_lists_cached_refs(in_cache):
    with pytest.raises(UnembedError, match=r"revision 'v9' is not in the hub cache.*main, v2"):
        resolve("tiny-org/tiny-gpt2", "v9")


def test_revision_on_a_local_path_is_refused(tiny_gpt2_dir):
    with pytest.raises(UnembedError, match="--revision applies to hub names"):
        load(tiny_gpt2_dir, revision="main")


def test_missing_weight_file_is_not_taken_for_a_hub_name(in_cache, tmp_path):
    with pytest.raises(UnembedError) as e:
        load(str(tmp_path / "absent.npy"))
    assert "hub" not in str(e.value)


def test_cli_inspect_by_hub_name(in_cache, capsys):
    assert main(["inspect", "--model", "tiny-org/tiny-gpt2", "--revision", "v2", "--json"]) == 0
    out = capsys.readouterr().out
    assert COMMIT_B in out
    assert main(["inspect", "--model", "tiny-org/nothing"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "models--tiny-org--nothing" in err


def test_docstring_examples():
    import doctest

    import unembed.sources.hub_cache as mod

    res = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 0 and res.failed == 0
