"""A local HuggingFace model directory, checked before anything in it is read.

* The directory: every entry is a regular file or a directory (no device, FIFO or socket,
  which can be read without end), and no symbolic link leads outside it; files it names (shard
  lists) must resolve inside it (:func:`unembed.sources._paths.contained`).
* ``config.json``: valid UTF-8 JSON (an error says the line and column), an object whose
  known fields have the right type and range (sizes positive integers, epsilons positive
  finite numbers, a soft-cap and a logit scale finite and non-zero, a known ``torch_dtype``,
  ``architectures`` a list of names consistent with ``model_type``), checked by unembed before
  transformers sees it; ``auto_map`` (the directory's own code) is refused unless the user
  trusts it (``--trust-remote-code``).
* Models are built with ``trust_remote_code`` passed explicitly (False unless asked), only
  from local files, and refused when any of their weights is missing from the checkpoint
  (transformers would initialise it at random): a head or hidden state never comes from
  weights that are not in the files given.
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import Any

from unembed._checks import UnembedError, read_json
from unembed.errors import Setting
from unembed.sources._paths import contained

__all__ = ["check_model_dir", "config_dict", "from_pretrained", "load_tokenizer", "read_config",
           "run_model",
           "transformers_module"]

#: config fields that, when present, must be positive integers (null not allowed)
_POSITIVE_INTS = ("vocab_size", "hidden_size", "n_embd", "d_model", "num_hidden_layers",
                  "n_layer", "num_attention_heads", "n_head", "max_position_embeddings",
                  "n_positions", "num_labels", "num_channels", "patch_size")
#: config fields that may be null, else positive integers
_OPTIONAL_INTS = ("head_dim", "intermediate_size", "n_inner", "num_key_value_heads",
                  "word_embed_proj_dim", "ffn_dim", "embedding_size")
#: config fields that may be null, else positive finite numbers
_POSITIVE_FLOATS = ("layer_norm_epsilon", "layer_norm_eps", "rms_norm_eps",
                    "final_logit_softcapping", "attn_logit_softcapping")
#: config fields that may be null, else finite non-zero numbers
_NONZERO_FLOATS = ("logit_scale", "logits_scaling")
_DTYPES = ("float32", "float16", "bfloat16", "float64", "auto")


def transformers_module() -> Any:
    """The ``transformers`` package, quiet (no progress bars, errors only)."""
    try:
        import transformers
    except ImportError:  # pragma: no cover - depends on the environment
        raise UnembedError("reading a HuggingFace model needs the 'transformers' package "
                           "(pip install 'unembed[hf]').") from None
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    return transformers


def check_model_dir(path: str | os.PathLike[str]) -> Path:
    """``path`` as a model directory whose entries are regular files or directories and whose
    symbolic links stay inside it; refused otherwise, before anything is opened."""
    p = Path(path)
    if not p.is_dir():
        raise UnembedError("not a directory.", path=p)
    if not (p / "config.json").exists() and not (p / "config.json").is_symlink():
        raise UnembedError("a directory without config.json; expected a HuggingFace model "
                            "directory.", path=p)
    try:
        entries = sorted(p.iterdir())
    except OSError as e:
        raise UnembedError(f"cannot list it ({e.strerror or type(e).__name__}).", path=p) from None
    for entry in entries:
        if entry.is_symlink():
            contained(p, entry.name, "file")  # refuses a link that leads outside
        try:
            mode = entry.stat().st_mode
        except OSError:
            continue  # a dangling link or a vanished file: refused if something reads it
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise UnembedError("not a regular file (a device, pipe or socket); refused.",
                               path=entry)
    return p


def _bad(path: Path, key: str, want: str, got: Any) -> Exception:
    return UnembedError(f"the field {key!r} must be {want}. Got {got!r} instead.", path=path)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def validate_config(raw: Any, file: Path, *, trust_remote_code: bool = False) -> dict[str, Any]:
    """Check the fields of a parsed ``config.json`` that unembed or transformers rely on
    (see the module docstring); returns it."""
    if not isinstance(raw, dict):
        raise UnembedError(f"must hold a JSON object. Got a {type(raw).__name__}.", path=file)
    mt = raw.get("model_type")
    if "model_type" in raw and (not isinstance(mt, str) or not mt.strip()):
        raise _bad(file, "model_type", "a non-empty string", mt)
    archs = raw.get("architectures")
    if archs is not None and (not isinstance(archs, list) or not archs or not all(
            isinstance(a, str) and a.isidentifier() for a in archs)):
        raise _bad(file, "architectures", "a list of class names", archs)
    for k in _POSITIVE_INTS:
        if k in raw and not (_is_int(raw[k]) and raw[k] >= 1):
            raise _bad(file, k, "a positive integer", raw[k])
    if "image_size" in raw:  # square images, or (height, width)
        size = raw["image_size"]
        sides = size if isinstance(size, list) and len(size) == 2 else [size]
        if not all(_is_int(v) and v >= 1 for v in sides):
            raise _bad(file, "image_size", "a positive integer or a pair [height, width] of "
                                           "them", size)
    for k in _OPTIONAL_INTS:
        if raw.get(k) is not None and not (_is_int(raw[k]) and raw[k] >= 1):
            raise _bad(file, k, "a positive integer or null", raw[k])
    for k in _POSITIVE_FLOATS:
        if raw.get(k) is not None and not (_is_num(raw[k]) and raw[k] > 0):
            raise _bad(file, k, "a positive finite number or null", raw[k])
    for k in _NONZERO_FLOATS:
        if raw.get(k) is not None and not (_is_num(raw[k]) and raw[k] != 0):
            raise _bad(file, k, "a finite non-zero number or null", raw[k])
    for k in ("torch_dtype", "dtype"):
        if raw.get(k) is not None and raw[k] not in _DTYPES:
            raise _bad(file, k, f"one of {', '.join(_DTYPES)} or null", raw[k])
    for k in ("tie_word_embeddings", "do_layer_norm_before", "_remove_final_layer_norm"):
        if k in raw and not isinstance(raw[k], bool):
            raise _bad(file, k, "true or false", raw[k])
    i2l = raw.get("id2label")
    if i2l is not None:
        if not isinstance(i2l, dict) or not all(
                isinstance(v, str) and k.lstrip("-").isdigit() for k, v in i2l.items()):
            raise _bad(file, "id2label", "an object from label ids to label names", i2l)
    l2i = raw.get("label2id")
    if l2i is not None and (not isinstance(l2i, dict) or not all(
            _is_int(v) for v in l2i.values())):
        raise _bad(file, "label2id", "an object from label names to ids", l2i)
    if raw.get("auto_map") is not None and not trust_remote_code:
        raise UnembedError(("names the directory's own Python code (auto_map), which is not "
                            "run unless you trust it: pass ",
                            Setting("trust_remote_code=True", "--trust-remote-code"),
                            " only for a directory you trust."), path=file)
    return raw


def config_dict(path: Path, *, trust_remote_code: bool = False) -> dict[str, Any]:
    """``path/config.json`` parsed and validated (:func:`validate_config`)."""
    file = contained(path, "config.json", "config file")
    return validate_config(read_json(file, "config file"), file,
                           trust_remote_code=trust_remote_code)


def _check_architectures(tf: Any, config: Any, file: Path) -> None:
    """Each class named in ``architectures`` must belong to the config's ``model_type``."""
    mt = getattr(config, "model_type", None)
    for a in getattr(config, "architectures", None) or []:
        cls = getattr(tf, a, None) if isinstance(a, str) else None
        if cls is None:
            continue  # unknown to this transformers: the loader below refuses it if needed
        want = getattr(getattr(cls, "config_class", None), "model_type", None)
        if want and mt and want != mt:
            raise UnembedError(f"says model_type {mt!r} but architectures names {a}, a "
                                   f"{want!r} model; which one the weights are is not known.",
                               path=file)


def read_config(path: Path, *, trust_remote_code: bool = False) -> Any:
    """The model's config from ``path/config.json``, validated first (local files only; the
    directory's own code only with ``trust_remote_code``)."""
    path = check_model_dir(path)
    config_dict(path, trust_remote_code=trust_remote_code)
    tf = transformers_module()
    try:
        config = tf.AutoConfig.from_pretrained(str(path), local_files_only=True,
                                               trust_remote_code=trust_remote_code)
    except Exception as e:  # transformers' own errors for a config it cannot build
        raise UnembedError(f"transformers cannot build a config from it "
                                               f"({type(e).__name__}: {_line(e)})",
                           path=path / "config.json") from None
    _check_architectures(tf, config, path / "config.json")
    return config


def _line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def from_pretrained(auto_cls: Any, path: Path, what: str, *, trust_remote_code: bool = False,
                    **kw: Any) -> Any:
    """``auto_cls.from_pretrained(path)`` locally, in eval mode, refused when any weight of
    the model is missing from the checkpoint (it would be initialised at random) or when
    transformers cannot build it (one line, never its traceback)."""
    check_weight_files(path)
    try:
        model, info = auto_cls.from_pretrained(str(path), local_files_only=True,
                                               trust_remote_code=trust_remote_code,
                                               output_loading_info=True, **kw)
    except Exception as e:
        raise UnembedError(f"transformers cannot load it as {what} ({type(e).__name__}: "
                               f"{_line(e)})", path=path) from None
    missing = sorted(str(k) for k in info.get("missing_keys", []))
    mismatched = info.get("mismatched_keys", [])
    if missing:
        raise UnembedError(f"the checkpoint lacks {len(missing)} of the {what}'s weights "
                               f"(first: {missing[0]!r}); transformers would initialise them "
                               f"at random, so what it computes would not come from the "
                               f"files given. Refused.", path=path)
    if mismatched:
        raise UnembedError(f"the checkpoint's weights do not fit the config "
                               f"(first: {mismatched[0]!r}). Refused.", path=path)
    model.eval()
    return model


def run_model(path: Path, call: Any) -> Any:
    """``call()`` (one forward pass of the model read from ``path``); an exception from inside
    the model (a config that does not fit its weights, inputs it cannot take) becomes one line
    naming the directory. Interrupts pass through."""
    try:
        return call()
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except Exception as e:
        raise UnembedError(f"the model failed to run ({type(e).__name__}: {_line(e)}).",
                           path=path) \
            from None


_TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer.model", "spiece.model",
                    "sentencepiece.bpe.model", "vocab.txt", "tokenizer.tiktoken")


def load_tokenizer(path: Path, *, trust_remote_code: bool = False) -> Any:
    """The directory's tokenizer, or None when it has none (transformers would otherwise
    build an empty one from the config, with only its special tokens) or it cannot be read."""
    if not any((path / f).is_file() for f in _TOKENIZER_FILES):
        return None
    check_tokenizer_config(path)
    tf = transformers_module()
    try:
        tok = tf.AutoTokenizer.from_pretrained(str(path), local_files_only=True,
                                               trust_remote_code=trust_remote_code)
    except Exception:  # a damaged or foreign tokenizer: labels become row numbers
        return None
    return tok if len(tok) > len(getattr(tok, "all_special_tokens", [])) else None


def check_weight_files(path: Path) -> None:
    """Every shard index of the directory (which transformers would follow) names only shard
    files inside it (:class:`~unembed.sources.checkpoint.Checkpoint` checks each entry)."""
    from unembed.sources.checkpoint import WEIGHT_FILES, Checkpoint

    for name in WEIGHT_FILES:
        if name.endswith(".index.json") and ((path / name).exists() or
                                             (path / name).is_symlink()):
            Checkpoint(path, index=name)


def check_tokenizer_config(path: Path) -> None:
    """``tokenizer_config.json`` may name the tokenizer's files (``vocab_file``,
    ``tokenizer_file``, ...), which transformers then opens as given (an absolute path, or a
    path relative to the working directory, not to the model directory); a saved tokenizer
    names none, so any such name is refused before anything is opened."""
    file = path / "tokenizer_config.json"
    if not (file.exists() or file.is_symlink()):
        return
    cfg = read_json(contained(path, "tokenizer_config.json", "tokenizer config"),
                    "tokenizer config")
    if not isinstance(cfg, dict):
        raise UnembedError("must hold a JSON object.", path=file)
    for k, v in cfg.items():
        if not k.endswith(("_file", "_files")) or v is None:
            continue
        raise UnembedError(f"the field {k!r} names {v!r}, which transformers would open "
                               f"as given rather than as a file of this directory; refused.",
                           path=file)
