"""No file outside what the user named: symbolic links out of every source (hub cache, spaCy
pipelines, labels files, tokenizer directories, TransformerLens inputs), revisions that are
paths, a ref that holds no hash, a config naming a tokenizer by path. Refusals are one line
naming the file, exit 2; a subprocess traces every ``open`` to show nothing outside is read."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_sources_hub_cache import COMMIT_A, _add_snapshot
from unembed import UnembedError, load
from unembed.sources._paths import check_tree, contained, revision_name

SECRET = "root:x:0:0:root:/root:/bin/bash"


# ------------------------------------------------------------------------ the rule itself
def test_contained_resolves_every_link_on_the_way(tmp_path: Path) -> None:
    root, out = tmp_path / "root", tmp_path / "out"
    (root / "sub").mkdir(parents=True)
    out.mkdir()
    (out / "f").write_text("x")
    (root / "sub" / "f").write_text("x")
    assert contained(root, "sub/f") == root / "sub" / "f"
    os.symlink(root / "sub" / "f", root / "inner")  # a link that stays inside: fine
    assert contained(root, "inner") == root / "inner"
    os.symlink(out, root / "away")  # a directory on the way leads out
    for rel in ("away/f", "../out/f", str(out / "f"), ""):
        with pytest.raises(UnembedError, match="leads outside the directory|not a path inside"):
            contained(root, rel)
    link_root = tmp_path / "linkroot"
    os.symlink(root, link_root)  # the user may name a link: its target is the directory
    assert contained(link_root, "sub/f") == link_root / "sub" / "f"


def test_check_tree_refuses_links_out_and_pipes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f").write_text("x")
    assert check_tree(root) == root
    os.symlink(tmp_path, root / "a" / "b" / "up")
    with pytest.raises(UnembedError, match=r"up: a symbolic link that leads outside"):
        check_tree(root)
    os.unlink(root / "a" / "b" / "up")
    os.mkfifo(root / "a" / "fifo")
    with pytest.raises(UnembedError, match="fifo: not a regular file"):
        check_tree(root)


def test_revision_names_follow_git_check_ref_format() -> None:
    """Against git itself (``git check-ref-format --allow-onelevel``), where git is installed;
    a name git refuses is refused, and every refusal is one line that is not the name's file."""
    names = ["main", "v1.0", "refs/pr/1", "a" * 40, "feature/x-y_z", "../../x", "/etc/passwd",
             "a/../b", "a//b", ".hidden", "a/.b", "x.lock", "a.", "a b", "a~1", "a^", "a:b",
             "a?", "a*", "a[", "a\\b", "@", "a@{1}", "trailing/", "", "ok@name", "a\tb"]
    git = shutil.which("git")
    for name in names:
        try:
            revision_name(name)
            ok = True
        except UnembedError as e:
            ok = False
            assert "\n" not in str(e) and "never a path" in str(e)
        if git is not None and name:
            want = subprocess.run([git, "check-ref-format", "--allow-onelevel", name],
                                  capture_output=True).returncode == 0
            assert ok == want, name
    assert revision_name("main") == "main"


# ----------------------------------------------------------------------------- hub cache
@pytest.fixture
def cache(tmp_path: Path, tiny_gpt2_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A hub cache with tiny-org/tiny-gpt2 at main, and beside it (outside) a file holding a
    valid hash and one holding a secret."""
    root = tmp_path / "hub"
    repo = root / "models--tiny-org--tiny-gpt2"
    _add_snapshot(repo, COMMIT_A, tiny_gpt2_dir)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT_A)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "hash").write_text(COMMIT_A)
    (outside / "secret").write_text(SECRET)
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return root


def test_a_revision_is_never_a_path(cache: Path) -> None:
    assert load("tiny-org/tiny-gpt2").head.n_labels > 2
    for rev in ("../../../outside/hash", "../../../outside/secret", "/etc/passwd"):
        with pytest.raises(UnembedError, match="not a branch, tag or commit name") as e:
            load("tiny-org/tiny-gpt2", revision=rev)
        assert SECRET not in str(e.value)


def test_a_ref_holding_no_hash_is_not_shown(cache: Path) -> None:
    repo = cache / "models--tiny-org--tiny-gpt2"
    (repo / "refs" / "leak").write_text(SECRET)
    with pytest.raises(UnembedError, match="leak: not a commit hash") as e:
        load("tiny-org/tiny-gpt2", revision="leak")
    assert "root:x" not in str(e.value)
    os.symlink(cache.parent / "outside" / "hash", repo / "refs" / "linked")
    with pytest.raises(UnembedError, match="linked: a symbolic link that leads outside"):
        load("tiny-org/tiny-gpt2", revision="linked")


def test_blobs_or_snapshot_linked_outside_the_repository(cache: Path) -> None:
    repo = cache / "models--tiny-org--tiny-gpt2"
    moved = cache.parent / "outside" / "blobs"
    shutil.move(repo / "blobs", moved)
    os.symlink(moved, repo / "blobs")
    with pytest.raises(UnembedError, match="leads outside the directory"):
        load("tiny-org/tiny-gpt2")
    os.unlink(repo / "blobs")
    shutil.move(moved, repo / "blobs")
    assert load("tiny-org/tiny-gpt2").head.n_labels > 2
    snap = repo / "snapshots" / COMMIT_A
    away = cache.parent / "outside" / "snap"
    shutil.copytree(snap, away, symlinks=False)
    shutil.rmtree(snap)
    os.symlink(away, snap)
    with pytest.raises(UnembedError, match="leads outside the directory"):
        load("tiny-org/tiny-gpt2")


# ------------------------------------------------------------ labels and tokenizer files
def test_labels_beside_a_weight_file_stay_beside_it(tmp_path: Path) -> None:
    d, outside = tmp_path / "d", tmp_path / "outside"
    d.mkdir()
    outside.mkdir()
    np.save(d / "head.npy", np.random.default_rng(0).standard_normal((3, 2)))
    (outside / "labels.json").write_text(json.dumps(["x", "y", "z"]))
    os.symlink(outside / "labels.json", d / "head.labels.json")
    with pytest.raises(UnembedError, match="head.labels.json: a symbolic link that leads "
                                           "outside"):
        load(d / "head.npy")
    os.unlink(d / "head.labels.json")
    (d / "head.labels.json").write_text(json.dumps(["a", "b", "c"]))
    assert load(d / "head.npy").head.labels == ("a", "b", "c")


def test_a_tokenizer_directory_for_labels_holds_its_own_files(tmp_path: Path,
                                                              tiny_gpt2_dir: Path) -> None:
    tok, outside = tmp_path / "tok", tmp_path / "outside"
    tok.mkdir()
    outside.mkdir()
    np.save(tmp_path / "head.npy", np.random.default_rng(0).standard_normal((5, 2)))
    shutil.copy(tiny_gpt2_dir / "tokenizer.json", outside / "tokenizer.json")
    os.symlink(outside / "tokenizer.json", tok / "tokenizer.json")
    with pytest.raises(UnembedError, match="tokenizer.json: a symbolic link that leads outside"):
        load(tmp_path / "head.npy", labels=tok)
    os.unlink(tok / "tokenizer.json")
    shutil.copy(outside / "tokenizer.json", tok / "tokenizer.json")
    (tok / "tokenizer_config.json").write_text(json.dumps({"vocab_file": "/etc/passwd"}))
    with pytest.raises(UnembedError, match="'vocab_file' names '/etc/passwd'"):
        load(tmp_path / "head.npy", labels=tok)
    (tok / "tokenizer_config.json").unlink()
    assert len(load(tmp_path / "head.npy", labels=tok).head.labels) == 5


# ------------------------------------------------------------------------ spaCy pipelines
@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("spacy")
    from spacy_tagger import train_tagger

    path = tmp_path_factory.mktemp("spacy") / "pipeline"
    train_tagger().to_disk(path)
    return path


@pytest.mark.parametrize("entry", ["tagger/model", "tagger", "vocab/strings.json"])
def test_spacy_links_out_of_the_pipeline_are_refused(pipeline: Path, tmp_path: Path,
                                                     entry: str) -> None:
    p = tmp_path / "p"
    shutil.copytree(pipeline, p)
    away = tmp_path / "outside" / entry.replace("/", "_")
    away.parent.mkdir()
    shutil.move(p / entry, away)
    os.symlink(away, p / entry)
    with pytest.raises(UnembedError, match=f"{entry}: a symbolic link that leads outside"):
        load(p)


def test_a_spacy_component_sourced_from_elsewhere_is_refused(pipeline: Path,
                                                             tmp_path: Path) -> None:
    p = tmp_path / "p"
    shutil.copytree(pipeline, p)
    cfg = (p / "config.cfg").read_text()
    cfg = cfg.replace("[components.tagger]\n",
                      f"[components.tagger]\nsource = \"{tmp_path / 'elsewhere'}\"\n", 1)
    (p / "config.cfg").write_text(cfg)
    with pytest.raises(UnembedError, match="'tagger' is sourced from another pipeline"):
        load(p)


def test_reads_during_a_spacy_load_stay_inside(tmp_path: Path) -> None:
    """The audit hook active during spacy.load refuses an open outside the pipeline and the
    installed software, and nothing once the load is over."""
    from unembed.sources.spacy_read import _OutsideRead, _reads_only_inside

    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "in").write_text("x")
    (tmp_path / "out").write_text(SECRET)
    with _reads_only_inside(tmp_path / "p"):
        assert (tmp_path / "p" / "in").read_text() == "x"
        with pytest.raises(_OutsideRead):
            (tmp_path / "out").read_text()
    assert (tmp_path / "out").read_text() == SECRET


# ------------------------------------------------------------------------ TransformerLens
def test_transformer_lens_on_a_directory_checks_it_first(tmp_path: Path,
                                                          tiny_gpt2_dir: Path) -> None:
    pytest.importorskip("transformer_lens")
    from unembed.sources.tlens import load_pretrained

    d = tmp_path / "d"
    shutil.copytree(tiny_gpt2_dir, d)
    weights = next(f.name for f in d.iterdir() if f.suffix == ".safetensors")
    (tmp_path / "outside").mkdir()
    shutil.move(d / weights, tmp_path / "outside" / weights)
    os.symlink(tmp_path / "outside" / weights, d / weights)
    with pytest.raises(UnembedError, match="leads outside the directory"):
        load_pretrained(str(d))
    os.unlink(d / weights)
    shutil.move(tmp_path / "outside" / weights, d / weights)
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "auto_map": {
        "AutoModelForCausalLM": "modeling_evil.Evil"}}))
    with pytest.raises(UnembedError, match="auto_map"):
        load_pretrained(str(d))


def test_transformer_lens_revision_is_never_a_path(cache: Path) -> None:
    pytest.importorskip("transformer_lens")
    from unembed.sources.tlens import load_pretrained

    with pytest.raises(UnembedError, match="not a branch, tag or commit name"):
        load_pretrained("gpt2", revision="../../../outside/hash")


def test_a_config_naming_its_tokenizer_by_path_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("transformer_lens")
    from unembed.sources.tlens import named_tokenizer as _named_tokenizer

    notes: list[str] = []
    for name in (str(tmp_path), "../tok", "./tok", "a/b/c"):
        with pytest.raises(UnembedError, match="not a hub name"):
            _named_tokenizer(name, notes, tmp_path / "x.tl_config.json")
    assert _named_tokenizer("absent-org/absent", notes, tmp_path / "c.json") is None
    assert "not in the hub cache" in notes[-1]


# ----------------------------------------------------------------------- traced opens
_TRACE = r"""
import json, os, sys
opened = []
sys.addaudithook(lambda ev, a: opened.append(os.path.realpath(os.fsdecode(a[0])))
                 if ev == "open" and a and isinstance(a[0], (str, bytes, os.PathLike)) else None)
from unembed.cli import main
codes = [main(argv) for argv in json.loads(sys.argv[1])]
print(json.dumps({"codes": codes, "opened": opened}))
"""


def test_no_file_outside_is_opened(cache: Path, tmp_path: Path, pipeline: Path,
                                   tiny_gpt2_dir: Path) -> None:
    """Every refusal above, run by the command line in a fresh process with every Python
    ``open`` recorded: none opens a file under the outside directory."""
    outside = tmp_path / "outside"
    repo = cache / "models--tiny-org--tiny-gpt2"
    (repo / "refs" / "leak").write_text(SECRET)
    d = tmp_path / "w"
    d.mkdir()
    np.save(d / "head.npy", np.random.default_rng(0).standard_normal((3, 2)))
    (outside / "labels.json").write_text(json.dumps(["x", "y", "z"]))
    os.symlink(outside / "labels.json", d / "head.labels.json")
    tok = tmp_path / "tok"
    tok.mkdir()
    shutil.copy(tiny_gpt2_dir / "tokenizer.json", outside / "tokenizer.json")
    os.symlink(outside / "tokenizer.json", tok / "tokenizer.json")
    np.save(tmp_path / "head5.npy", np.random.default_rng(0).standard_normal((5, 2)))
    p = tmp_path / "p"
    shutil.copytree(pipeline, p)
    shutil.move(p / "vocab" / "strings.json", outside / "strings.json")
    os.symlink(outside / "strings.json", p / "vocab" / "strings.json")
    runs = [["inspect", "tiny-org/tiny-gpt2", "--revision", "../../../outside/hash"],
            ["inspect", "tiny-org/tiny-gpt2", "--revision", "leak"],
            ["inspect", str(d / "head.npy")],
            ["inspect", str(tmp_path / "head5.npy"), "--labels", str(tok)],
            ["inspect", str(p)]]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    res = subprocess.run([sys.executable, "-c", _TRACE, json.dumps(runs)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    record = json.loads(res.stdout.strip().splitlines()[-1])
    assert record["codes"] == [2] * len(runs), res.stderr[-2000:]
    real_out = os.path.realpath(outside)
    assert not [f for f in record["opened"] if f.startswith(real_out + os.sep)]
    assert SECRET not in res.stderr and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == len(runs)
