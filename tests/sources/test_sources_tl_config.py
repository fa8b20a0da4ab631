"""The config beside a TransformerLens state dict is read with its types and checked against
the state dict before any model is built: a wrong-typed, unknown or out-of-choice value, and a
size the state dict contradicts (``n_layers: 10000000`` included, which would otherwise build
ten million blocks), end in one line naming the config file and the field, exit status 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from unembed import UnembedError, load

pytest.importorskip("transformer_lens")

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny HookedTransformer (1 layer, d = 16) written as a state dict with its config."""
    import warnings

    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from unembed.export import export_model

    cfg = HookedTransformerConfig(n_layers=1, d_model=16, n_ctx=32, d_head=8, n_heads=2,
                                  d_mlp=32, d_vocab=50, act_fn="gelu",
                                  normalization_type="LN", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        m = HookedTransformer(cfg)
    m.eval()
    out = tmp_path_factory.mktemp("tl") / "m.safetensors"
    lm = load(m)
    export_model(lm, lm.head, out)
    return out


def _with(exported: Path, tmp: Path, **changes: object) -> Path:
    """A copy of the state dict and its config, with config fields changed."""
    sd = tmp / "m.safetensors"
    sd.write_bytes(exported.read_bytes())
    rec = json.loads(exported.with_name("m.tl_config.json").read_text())
    rec["config"].update(changes)
    (tmp / "m.tl_config.json").write_text(json.dumps(rec))
    return sd


def _cli(sd: Path) -> tuple[int, list[str]]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-m", "unembed", "inspect", "--model", str(sd), "--as",
                        "transformer-lens"], env=env, capture_output=True, text=True,
                       timeout=300)
    assert "Traceback" not in r.stderr
    return r.returncode, r.stderr.strip().splitlines()


def test_the_written_config_reads_back(exported):
    from unembed.sources.tlens import load_state_dict_file

    assert load_state_dict_file(exported).head.n_labels == 50


@pytest.mark.parametrize("field, value, words", [
    ("tokenizer_name", 12, ["tokenizer_name", "a string or null", "12"]),
    ("positional_embedding_type", "bogus", ["positional_embedding_type", "'rotary'",
                                            "'bogus'"]),
    ("output_logits_soft_cap", "abc", ["output_logits_soft_cap", "a number", "'abc'"]),
    ("n_heads", True, ["n_heads", "an integer", "True"]),
    ("eps", None, ["eps", "a number"]),
    ("act_fn", "wiggle", ["act_fn", "gelu", "'wiggle'"]),
    ("n_wings", 2, ["'n_wings'", "does not have"]),
    ("d_vocab", 51, ["d_vocab", "51", "embed.W_E", "50"]),
    ("d_model", 17, ["d_model", "17", "16"]),
    ("n_ctx", 33, ["n_ctx", "33", "pos_embed.W_pos", "32"]),
    ("d_mlp", 31, ["d_mlp", "31", "32"]),
])
def test_a_bad_config_value_is_refused_naming_the_field(exported, tmp_path, field, value, words):
    from unembed.sources.tlens import load_state_dict_file

    sd = _with(exported, tmp_path, **{field: value})
    with pytest.raises(UnembedError) as e:
        load_state_dict_file(sd)
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 'm.tl_config.json'}: ")
    for w in words:
        assert w in msg


def test_wrong_types_are_exit_2_on_the_command_line(exported, tmp_path):
    sd = _with(exported, tmp_path, tokenizer_name=12)
    code, lines = _cli(sd)
    assert code == 2 and len(lines) == 1
    assert "m.tl_config.json" in lines[0] and "tokenizer_name" in lines[0]


def test_ten_million_layers_are_refused_before_anything_is_built(exported, tmp_path):
    sd = _with(exported, tmp_path, n_layers=10_000_000)
    t0 = time.perf_counter()
    code, lines = _cli(sd)
    took = time.perf_counter() - t0
    assert code == 2 and len(lines) == 1
    assert "n_layers is 10000000" in lines[0] and "1 block(s)" in lines[0]
    assert took < 120  # building the model would take minutes and gigabytes
