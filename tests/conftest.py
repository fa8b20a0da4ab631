"""Shared fixtures: tiny real models built in-process from random configs (no hub, no network).

Language models share one byte-level BPE tokenizer trained on a few sentences. Every parameter
is perturbed after initialisation so that norms have non-trivial gains and shifts (a fresh
LayerNorm has gain 1 and shift 0, which would hide the difference between raw and folded
heads). Fixtures are session-scoped: each model is built once per test process.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SENTENCES = [
    "the cat sat on the mat",
    "a dog ran to the park and the dog sat",
    "the quick brown fox jumps over the lazy dog",
    "cats and dogs are not the same animal",
    "über café naïve résumé",
]

LM_FAMILIES = ("gpt2", "gpt_neox", "llama", "mistral", "qwen2", "gemma", "gemma2", "opt")


def make_tokenizer(vocab_size: int = 300) -> Any:
    """A byte-level BPE tokenizer (GPT-2 style, 'Ġ' for a leading space) as a
    ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
        show_progress=False,
    )
    tok.train_from_iterator(SENTENCES, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                                   bos_token="<|endoftext|>")


def _perturb(model: Any, seed: int, scale: float = 0.2) -> None:
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=torch.float32).to(p.dtype))


def lm_config(family: str, vocab: int, **overrides: Any) -> Any:
    """A tiny config of one causal-LM family (1-2 layers, hidden 16-32)."""
    import transformers as tf

    common: dict[str, Any] = {"vocab_size": vocab, "bos_token_id": 0, "eos_token_id": 0}
    small = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
             "num_attention_heads": 2, "max_position_embeddings": 64}
    if family == "gpt2":
        cfg = tf.GPT2Config(n_embd=16, n_layer=1, n_head=2, n_positions=64, **common)
    elif family == "gpt_neox":
        cfg = tf.GPTNeoXConfig(**small, **common)
    elif family == "llama":
        cfg = tf.LlamaConfig(**small, num_key_value_heads=2, tie_word_embeddings=False,
                             **common)
    elif family == "mistral":
        cfg = tf.MistralConfig(**small, num_key_value_heads=1, tie_word_embeddings=False,
                               **common)
    elif family == "qwen2":
        cfg = tf.Qwen2Config(**small, num_key_value_heads=2, tie_word_embeddings=True, **common)
    elif family == "gemma":
        cfg = tf.GemmaConfig(**small, num_key_value_heads=1, head_dim=8, **common)
    elif family == "gemma2":
        cfg = tf.Gemma2Config(**small, num_key_value_heads=1, head_dim=8,
                              final_logit_softcapping=30.0, **common)
    elif family == "opt":
        cfg = tf.OPTConfig(hidden_size=16, ffn_dim=32, num_hidden_layers=1,
                           num_attention_heads=2, max_position_embeddings=64,
                           word_embed_proj_dim=16, pad_token_id=1, **common)
    else:  # pragma: no cover - programming error in a test
        raise ValueError(family)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


def build_lm_dir(path: Path, family: str, *, seed: int = 0, dtype: Any = None,
                 **overrides: Any) -> Path:
    """Save a tiny random causal LM of ``family`` with the shared tokenizer into ``path``."""
    import torch
    import transformers as tf

    tf.utils.logging.disable_progress_bar()
    tok = make_tokenizer()
    cfg = lm_config(family, len(tok), **overrides)
    torch.manual_seed(seed)
    model = tf.AutoModelForCausalLM.from_config(cfg)
    _perturb(model, seed)
    if dtype is not None:
        model = model.to(dtype)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def build_vision_dir(path: Path, family: str, *, seed: int = 0, n_labels: int = 5) -> Path:
    """Save a tiny random image classifier (ViT, ResNet or ConvNeXt) with ``id2label``."""
    import torch
    import transformers as tf

    tf.utils.logging.disable_progress_bar()
    id2label = {i: f"class_{chr(97 + i)}" for i in range(n_labels)}
    label2id = {v: k for k, v in id2label.items()}
    kw: dict[str, Any] = {"id2label": id2label, "label2id": label2id, "num_channels": 3}
    if family == "vit":
        cfg = tf.ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=32, image_size=16, patch_size=8, **kw)
    elif family == "resnet":
        cfg = tf.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                              layer_type="basic", **kw)
    elif family == "convnext":
        cfg = tf.ConvNextConfig(num_stages=2, hidden_sizes=[8, 16], depths=[1, 1], patch_size=2,
                                **kw)
    else:  # pragma: no cover
        raise ValueError(family)
    torch.manual_seed(seed)
    model = tf.AutoModelForImageClassification.from_config(cfg)
    _perturb(model, seed)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``tiny_lm_dir(family)`` -> a saved tiny LM directory (built once per session)."""
    cache: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in cache:
            cache[family] = build_lm_dir(tmp_path_factory.mktemp(f"lm_{family}"), family)
        return cache[family]

    return get


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tiny_lm_dir: Callable[[str], Path]) -> Path:
    """A tiny GPT-2 (tied head, final LayerNorm with a shift) saved with its tokenizer."""
    return tiny_lm_dir("gpt2")


@pytest.fixture(scope="session")
def tiny_llama_dir(tiny_lm_dir: Callable[[str], Path]) -> Path:
    """A tiny Llama (untied head, RMSNorm)."""
    return tiny_lm_dir("llama")


@pytest.fixture(scope="session")
def tiny_gemma2_dir(tiny_lm_dir: Callable[[str], Path]) -> Path:
    """A tiny Gemma 2 (tied, RMSNorm with 1 + weight, soft-capped logits)."""
    return tiny_lm_dir("gemma2")


@pytest.fixture(scope="session")
def tiny_vision_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``tiny_vision_dir(family)`` for "vit", "resnet", "convnext" (built once per session)."""
    cache: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in cache:
            cache[family] = build_vision_dir(tmp_path_factory.mktemp(f"vis_{family}"), family)
        return cache[family]

    return get


def run_cli(*args: Any, cwd: Path | str | None = None) -> Any:
    """``unembed ARGS`` in this process (``main(argv)``), as a user would run it in ``cwd``:
    an object with ``returncode``, ``stdout`` and ``stderr`` like ``subprocess.run``'s."""
    import contextlib
    import io
    import os
    import warnings
    from types import SimpleNamespace

    from unembed.cli import main

    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        # warnings as a real process shows them (printed), not the suite's "error" filter
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            warnings.resetwarnings()
            code = main([str(a) for a in args])
    finally:
        os.chdir(old)
    assert "Traceback" not in err.getvalue()
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())
