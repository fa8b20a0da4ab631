"""Bad input ends in exit status 2 and one line on stderr that names the file, field or
option at fault, never an internal error (exit 3) nor a traceback: broken spaCy pipeline
files, data that is not what the model reads, options that do not apply, and any error a
dependency raises while reading a named file. The CLI runs in a subprocess, as a user runs it.
"""

from __future__ import annotations

import configparser
import json
import os
import pickle
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from unembed import UnembedError
from unembed._dependency_errors import reading

SRC = str(Path(__file__).resolve().parents[2] / "src")


def one_line_error(*argv: object, cwd: Path | None = None) -> str:
    """Run ``unembed ARGV``; assert exit status 2 and exactly one line on stderr, no
    traceback; return that line."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-m", "unembed", *map(str, argv)], env=env, cwd=cwd,
                       capture_output=True, text=True, timeout=300)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    return lines[0]


# ------------------------------------------------------------------ the root: one place
def test_an_error_a_dependency_raises_on_a_named_file_names_the_file():
    with pytest.raises(UnembedError, match=r"^x\.cfg: configparser cannot read it "
                                           r"\(DuplicateSectionError: .*'a' already exists"):
        with reading("x.cfg"):
            configparser.ConfigParser().read_string("[a]\n[a]\n")


def test_an_error_raised_in_unembed_itself_stays_a_bug():
    from unembed._checks import unique_labels

    with pytest.raises(TypeError):  # unembed's own frame: not the file's fault
        with reading("x.cfg"):
            unique_labels(5)  # type: ignore[arg-type]


# ------------------------------------------------------------------ weight files and arrays
@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("files")
    np.save(d / "W.npy", np.random.default_rng(0).standard_normal((10, 4)))
    H = np.ones((5, 4))
    H[3, 1] = np.nan
    np.save(d / "H_nan.npy", H)
    (d / "raw.pt").write_bytes(pickle.dumps({"weight": Fraction(1, 2)}))
    hdr = json.dumps({"w": {"dtype": "F32", "shape": [2**64, 2**40],
                            "data_offsets": [0, 16]}}).encode()
    (d / "huge.safetensors").write_bytes(len(hdr).to_bytes(8, "little") + hdr + bytes(16))
    (d / "tok").mkdir()
    (d / "tok" / "tokenizer_config.json").write_text('{"tokenizer_class": "BertTokenizer"}')
    return d


def test_model_dtype_on_a_weight_file_is_refused_with_the_allowed_values(files):
    line = one_line_error("inspect", files / "W.npy", "--model-dtype", "nonsense")
    assert "--model-dtype" in line and "float32" in line and "nonsense" in line
    line = one_line_error("inspect", files / "W.npy", "--model-dtype", "float32")
    assert "--model-dtype float32" in line and "does not" not in line and "W.npy" in line


def test_nan_rows_name_the_file_and_the_first_bad_row(files):
    line = one_line_error("audit", "--model", files / "W.npy", "--data", files / "H_nan.npy",
                          "--out", files / "out")
    assert str(files / "H_nan.npy") in line and "row 3" in line
    line = one_line_error("verify", files / "W.npy", files / "W.npy", "--data",
                          files / "H_nan.npy")
    assert str(files / "H_nan.npy") in line and "row 3" in line


def test_a_raw_pickle_is_refused_in_one_line_without_torchs_warning(files):
    line = one_line_error("inspect", files / "raw.pt")
    assert str(files / "raw.pt") in line and "weights-only" in line


def test_a_safetensors_header_with_an_enormous_shape_is_refused_by_name(files):
    line = one_line_error("inspect", files / "huge.safetensors")
    assert str(files / "huge.safetensors") in line and "'w'" in line
    assert "Overflow" not in line


def test_a_tokenizer_directory_without_vocabulary_is_not_labels(files):
    line = one_line_error("inspect", files / "W.npy", "--labels", files / "tok")
    assert str(files / "tok") in line and "no vocabulary" in line


# ------------------------------------------------------------------ a language model's data
@pytest.fixture(scope="module")
def lm_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("lm_data")
    np.save(d / "floats.npy", np.full((2, 8), 0.5))
    ids = np.zeros((2, 8), dtype=np.int64)
    ids[1, 5] = 1_000_000
    np.save(d / "big_ids.npy", ids)
    (d / "empty.txt").write_text("")
    (d / "text.txt").write_text("the cat sat on the mat " * 100)
    return d


def test_lm_data_errors_name_the_file_the_id_and_the_limit(tiny_gpt2_dir, lm_data):
    vocab = json.loads((tiny_gpt2_dir / "config.json").read_text())["vocab_size"]
    n_pos = json.loads((tiny_gpt2_dir / "config.json").read_text())["n_positions"]
    common = ("audit", "--model", tiny_gpt2_dir, "--out", lm_data / "out", "--data")
    line = one_line_error(*common, lm_data / "floats.npy")
    assert str(lm_data / "floats.npy") in line and "float64" in line and "integers" in line
    line = one_line_error(*common, lm_data / "big_ids.npy")
    assert str(lm_data / "big_ids.npy") in line and "1000000" in line and str(vocab) in line
    assert "row 1, position 5" in line
    line = one_line_error(*common, lm_data / "text.txt", "--window", n_pos + 1)
    assert "--window" in line and f"at most {n_pos}" in line
    line = one_line_error(*common, lm_data / "empty.txt")
    assert str(lm_data / "empty.txt") in line and "empty" in line


@pytest.mark.parametrize("device", ["meta", "xpu", "vulkan"])
def test_a_device_unembed_does_not_run_on_is_refused(tiny_gpt2_dir, device):
    line = one_line_error("inspect", "--model", tiny_gpt2_dir, "--device", device)
    assert line.count("--device") == 1 and repr(device) in line and "cpu, cuda" in line


# ------------------------------------------------------------------ spaCy pipelines
@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import spacy
    from spacy.training import Example

    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("tagger")
    exs = [Example.from_dict(nlp.make_doc(t), {"tags": tags}) for t, tags in
           (("the cat sat", ["DT", "NN", "VB"]), ("a dog ran", ["DT", "NN", "VB"]))]
    opt = nlp.initialize(lambda: exs)
    for _ in range(4):  # trained: the output rows are no longer zero
        nlp.update(exs, sgd=opt)
    path = tmp_path_factory.mktemp("spacy") / "en_pipe"
    nlp.to_disk(path)
    return path


def _broken(pipeline: Path, tmp: Path, *, cfg=None, meta=None) -> Path:
    d = tmp / "broken_pipe"
    shutil.copytree(pipeline, d)
    if cfg is not None:
        (d / "config.cfg").write_text(cfg((d / "config.cfg").read_text()))
    if meta is not None:
        (d / "meta.json").write_text(meta((d / "meta.json").read_text()))
    return d


@pytest.mark.parametrize("case, culprit, words", [
    ("lang", "config.cfg", ["'zz'", "lang"]),
    ("duplicate", "config.cfg", ["'nlp' already exists"]),
    ("interpolation", "config.cfg", ["foo.bar"]),
    ("meta_json", "meta.json", ["invalid JSON"]),
    ("meta_v4", "meta.json", [">=4.0.0", "major version"]),
])
def test_broken_pipeline_files_are_named(pipeline, tmp_path, case, culprit, words):
    edits = {
        "lang": {"cfg": lambda t: t.replace('lang = "en"', 'lang = "zz"')},
        "duplicate": {"cfg": lambda t: t + '\n[nlp]\nlang = "en"\n'},
        "interpolation": {"cfg": lambda t: t.replace('lang = "en"', "lang = ${foo.bar}")},
        "meta_json": {"meta": lambda t: "{not json"},
        "meta_v4": {"meta": lambda t: json.dumps({**json.loads(t),
                                                  "spacy_version": ">=4.0.0,<4.1.0"})},
    }[case]
    d = _broken(pipeline, tmp_path, **edits)
    line = one_line_error("inspect", "--model", d)
    assert str(d / culprit) in line
    for w in words:
        assert w in line


def test_an_unloadable_pipeline_keeps_its_relative_name(pipeline, tmp_path):
    d = _broken(pipeline, tmp_path)
    shutil.rmtree(d / "tagger")
    line = one_line_error("inspect", "--model", "broken_pipe", cwd=tmp_path)
    assert "broken_pipe: not a loadable spaCy pipeline" in line


def test_model_dtype_does_not_apply_to_a_pipeline(pipeline):
    line = one_line_error("inspect", "--model", pipeline, "--model-dtype", "nonsense")
    assert "--model-dtype" in line and "float32" in line
    line = one_line_error("inspect", "--model", pipeline, "--model-dtype", "bfloat16")
    assert "--model-dtype bfloat16" in line and "spaCy pipeline" in line


def test_spacy_text_that_is_not_utf8_or_too_long_is_named(pipeline, tmp_path):
    import spacy

    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"the cat sat\nthe \xff dog\n")
    line = one_line_error("audit", "--model", pipeline, "--data", bad, "--out",
                          tmp_path / "o1")
    assert str(bad) in line and "UTF-8" in line and "0xff" in line
    limit = spacy.blank("en").max_length
    long = tmp_path / "long.txt"
    long.write_text("the cat sat\n" + "a " * (limit // 2 + 10) + "\n")
    line = one_line_error("audit", "--model", pipeline, "--data", long, "--out",
                          tmp_path / "o2")
    assert str(long) in line and "line 2" in line and str(limit) in line
