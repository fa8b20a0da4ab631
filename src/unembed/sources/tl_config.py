"""The HookedTransformerConfig beside a TransformerLens state dict, read with its types and
checked against the state dict *before* any model is built.

``HookedTransformerConfig.from_dict`` takes whatever JSON gives it: ``tokenizer_name: 12``
or a soft-cap of ``"abc"`` fail deep inside TransformerLens, and ``n_layers: 10000000`` builds
ten million blocks (gigabytes, minutes) before the state dict is ever compared with it. Here:

* every field is one of ``HookedTransformerConfig``'s, and its value has the field's declared
  type (``int``, ``float``, ``bool``, ``str``, optional or not; numbers finite; a bool is not a
  number); the fields that take one of a few words take one of them
  (``positional_embedding_type``, ``normalization_type``, ``act_fn``, ``attention_dir``);
* the sizes are positive, and every size the state dict shows agrees with it: the embedding
  ``embed.W_E`` (d_vocab, d_model), the unembedding ``unembed.W_U`` (d_model, d_vocab_out),
  the positions ``pos_embed.W_pos`` (n_ctx, d_model) where the model has them, the number of
  blocks (``blocks.N.``), the heads ``blocks.0.attn.W_Q`` (n_heads, d_model, d_head) and the
  MLP ``blocks.0.mlp.W_in`` (d_model, d_mlp).

Each refusal is one line naming the config file and the field.
"""

from __future__ import annotations

import math
import os
import re
import types
import typing
from pathlib import Path
from typing import Any

from unembed._checks import UnembedError

__all__ = ["CONFIG_FORMAT", "STATE_DICT_SUFFIXES", "check_against_state_dict", "check_fields",
           "config_path"]

#: What the config file beside a written state dict says it is (its "format" field).
CONFIG_FORMAT = "unembed: the HookedTransformerConfig of a TransformerLens state dict"
#: Suffixes of the state dicts written and read here: safetensors, else ``torch.save``.
STATE_DICT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")


def config_path(state_dict: str | os.PathLike[str]) -> Path:
    """``dir/NAME.tl_config.json``, the config beside the state dict ``dir/NAME.EXT``.

    >>> config_path("out/gpt2-neg.safetensors").as_posix()
    'out/gpt2-neg.tl_config.json'
    """
    p = Path(state_dict)
    return p.with_name(p.stem + ".tl_config.json")


#: Fields that take one of a few words (TransformerLens 3.x builds nothing else).
CHOICES: dict[str, tuple[object, ...]] = {
    "positional_embedding_type": ("standard", "shortformer", "rotary", "alibi",
                                  "relative_positional_bias"),
    "normalization_type": (None, "LN", "LNPre", "RMS", "RMSPre"),
    "attention_dir": ("causal", "bidirectional"),
}

#: Sizes that must be positive integers.
SIZES = ("d_model", "d_head", "n_layers", "n_ctx", "n_heads", "d_vocab")


def _type_name(t: Any) -> str:
    args = [a for a in typing.get_args(t) if a is not type(None)]
    if args:
        names = " or ".join(_type_name(a) for a in args)
        return names + (" or null" if type(None) in typing.get_args(t) else "")
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            list: "a list", dict: "an object"}.get(typing.get_origin(t) or t, str(t))


def _fits(value: object, t: Any) -> bool:
    """Whether a JSON value has the declared type ``t`` of a dataclass field."""
    origin = typing.get_origin(t)
    if origin is typing.Union or origin is types.UnionType:
        return any(_fits(value, a) for a in typing.get_args(t))
    if t is type(None):
        return value is None
    if t is bool:
        return isinstance(value, bool)
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if t is float:
        return (isinstance(value, (int, float)) and not isinstance(value, bool)
                and math.isfinite(value))
    if t is str:
        return isinstance(value, str)
    if (origin or t) in (list, typing.List):  # noqa: UP006 - the config declares typing.List
        return isinstance(value, list)
    if (origin or t) in (dict, typing.Dict):  # noqa: UP006
        return isinstance(value, dict)
    return True  # a type JSON cannot spell (torch.dtype): checked by the caller


def check_fields(path: Path, fields: dict[str, Any], config_class: Any) -> None:
    """Refuse a field ``config_class`` (HookedTransformerConfig) does not have, a value of
    another type than the field declares, a word a choice field does not take, a size that
    is not positive, and an ``act_fn`` TransformerLens does not have."""
    import dataclasses

    from transformer_lens.utilities.activation_functions import SUPPORTED_ACTIVATIONS

    hints = typing.get_type_hints(config_class)
    known = {f.name for f in dataclasses.fields(config_class)}
    for name, value in fields.items():
        if name not in known:
            raise UnembedError(f"its config has the field {name!r}, which a "
                                   f"HookedTransformerConfig does not have; refused.", path=path)
        if name == "dtype":
            continue
        if not _fits(value, hints[name]):
            raise UnembedError(f"its config's {name} must be {_type_name(hints[name])}. "
                                   f"Got {value!r}.", path=path)
        if name in CHOICES and value not in CHOICES[name]:
            raise UnembedError(f"its config's {name} must be one of "
                                   f"{', '.join(repr(c) for c in CHOICES[name])}. Got "
                                   f"{value!r}.", path=path)
    act = fields.get("act_fn")
    if act is not None and act not in SUPPORTED_ACTIVATIONS:
        raise UnembedError(f"its config's act_fn must be one of "
                               f"{', '.join(sorted(SUPPORTED_ACTIVATIONS))}. Got {act!r}.",
                           path=path)
    for name in SIZES:
        if name in fields and fields[name] < 1:
            raise UnembedError(f"its config's {name} must be at least 1. Got "
                                   f"{fields[name]!r}.", path=path)


_BLOCK = re.compile(r"^blocks\.(\d+)\.")


def check_against_state_dict(path: Path, cfg: Any, shapes: dict[str, tuple[int, ...]]) -> None:
    """Refuse a config (``path``, read into ``cfg``) whose sizes the state dict's tensor
    ``shapes`` contradict (see the module docstring); run before the model is built, so a
    config that asks for more than the state dict holds builds nothing."""

    def refuse(field: str, says: object, shows: object, key: str) -> UnembedError:
        return UnembedError(f"its config's {field} is {says!r}, but the state dict's "
                                f"{key} shows {shows}; refused before building the model.",
                            path=path)

    want: list[tuple[str, int, str, int]] = []  # (field, value, tensor, axis)
    d_vocab_out = cfg.d_vocab_out if cfg.d_vocab_out > 0 else cfg.d_vocab
    want += [("d_vocab", cfg.d_vocab, "embed.W_E", 0), ("d_model", cfg.d_model, "embed.W_E", 1),
             ("d_model", cfg.d_model, "unembed.W_U", 0),
             ("d_vocab_out", d_vocab_out, "unembed.W_U", 1)]
    if cfg.positional_embedding_type in ("standard", "shortformer"):
        want += [("n_ctx", cfg.n_ctx, "pos_embed.W_pos", 0)]
    want += [("n_heads", cfg.n_heads, "blocks.0.attn.W_Q", 0),
             ("d_model", cfg.d_model, "blocks.0.attn.W_Q", 1),
             ("d_head", cfg.d_head, "blocks.0.attn.W_Q", 2)]
    if cfg.d_mlp is not None and not cfg.attn_only:
        want += [("d_mlp", cfg.d_mlp, "blocks.0.mlp.W_in", 1)]
    for field, value, key, axis in want:
        shape = shapes.get(key)
        if shape is None:
            if key.startswith("blocks.0."):
                continue  # another layout of the block (experts, ...): compared after building
            raise UnembedError(f"its config describes a model with {key}, which the "
                                   f"state dict lacks; refused before building the model.",
                               path=path)
        if len(shape) <= axis or shape[axis] != value:
            shows = f"shape {shape}" if len(shape) <= axis else shape[axis]
            raise refuse(field, value, shows, f"{key} (axis {axis})")
    blocks = {int(m.group(1)) for k in shapes if (m := _BLOCK.match(k))}
    n_blocks = max(blocks) + 1 if blocks else 0
    if cfg.n_layers != n_blocks:
        raise refuse("n_layers", cfg.n_layers, f"{n_blocks} block(s)", "blocks.N")
