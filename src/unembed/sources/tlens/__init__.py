"""TransformerLens ``HookedTransformer`` models: the exact head and what its processing did.

Rooms: :mod:`~unembed.sources.tlens.adapter` (the model and its head),
:mod:`~unembed.sources.tlens.hub` (by name or directory, from the hub cache),
:mod:`~unembed.sources.tlens.state_dict` (a state dict and its config); written back by
:mod:`unembed.export.tlens`.

A HookedTransformer computes its logits as

    z = cap * tanh((h W_U + b_U) / cap)      (``output_logits_soft_cap`` > 0)
    z = h W_U + b_U                          (all others)

with ``W_U`` of shape (d, V) and ``h`` the input of the ``unembed`` component (the hook point
``unembed.hook_in``: the output of ``ln_final``). The head read here is ``W = W_U^T`` (V, d),
``b = b_U``; the hidden states come through that hook, so ``head.logits(hidden_states(x))``
is the model's own logits (checked on first use).

TransformerLens usually processes the weights when it loads a model
(``from_pretrained(..., fold_ln=True, center_writing_weights=True, center_unembed=True)``, or
``process_weights_``), and each step changes what the rows are:

* ``fold_ln``: the final norm's gain is multiplied into W_U (and its shift into b_U); the norm
  becomes ``LNPre`` / ``RMSPre`` (no gain). The rows are then the *folded* rows
  (docs/model.md), and the hidden state is the normalised state n. After a LayerNorm n sums to
  zero, so every row may move along the all-ones direction without changing a logit, and
  fold_ln moves each row there: it *projects the rows off that null-space direction*
  (each row sums to zero over d). Logits unchanged; cosines changed.
* ``center_unembed``: the mean row is subtracted from every row (W_U's columns average zero
  over the vocabulary): a *translation*. Logits shift by the same amount for every label, so
  softmax log-probabilities are unchanged; cosines change, which is the paper's point. With a
  soft-capped head the translation is *not* a symmetry: a uniform shift does not survive the
  tanh, so the processed model's log-probabilities differ from the original's.
  TransformerLens 3.x refuses this in ``from_pretrained`` but ``process_weights_`` still does
  it; unembed says so when it sees centred rows under a soft-cap.
* ``center_writing_weights``: every weight writing to the residual stream has mean zero over
  d_model. The following LayerNorm removes the mean anyway, so neither the head nor h changes.

None of this is recorded on the model, so :func:`detect_processing` reads it off the weights
(exact zero-mean checks up to the float precision) and the config (``normalization_type``).

Ways in:

* a ``HookedTransformer`` object (``unembed.load(model)``), whatever the user did to it;
* a model name from TransformerLens's model table (``gpt2``, ``gpt2-small``, ``pythia-70m``,
  ...), read from the local HuggingFace hub cache the way ``HookedTransformer.from_pretrained``
  reads it there once downloaded (:func:`load_pretrained`; CLI: ``--model gpt2 --as
  transformer-lens``), with TransformerLens's own processing defaults (fold_ln,
  center_writing_weights, center_unembed all True) unless turned off. Never a download: the
  snapshot is resolved by :mod:`unembed.sources.hub_cache` first, the HuggingFace model is read
  from it (``local_files_only``), and TransformerLens converts it (``hf_model=``) with every
  HuggingFace call it makes told ``local_files_only=True``;
* a local HuggingFace directory (a fine-tuned model of an architecture TransformerLens
  converts: ``--model DIR --as transformer-lens``), built as ``from_pretrained`` builds a model
  (its config and state-dict converters take a local path; ``from_pretrained`` itself takes
  only names), with the same guards on the processing;
* models TransformerLens keeps in its own format (``NeelNanda/...``, ``ArthurConmy/...``,
  ``Baidicoot/...``: the toy models ``gelu-1l``, ``attn-only-2l``, ``solu-1l``, ...; a
  ``config.json`` of a ``HookedTransformerConfig`` and a ``*final.pth`` state dict), built as
  ``from_pretrained`` builds them, except that the state dict is read with ``weights_only=True``
  (TransformerLens itself unpickles it with ``weights_only=False``) and the tokenizer is taken
  from the hub cache only (without it the labels are row numbers, said in the notes).

Every conversion from a HuggingFace model is checked against that model: the converted model's
probabilities on random token ids must equal the HuggingFace model's (within the dtype's
tolerance), or the model is refused rather than read.

* a state dict file with its config beside it (``NAME.safetensors`` or ``NAME.pt`` and
  ``NAME.tl_config.json``), as :func:`unembed.export.export_model` writes a TransformerLens
  model (``unembed counterexample ... --as transformer-lens``): :func:`load_state_dict_file`
  (CLI: ``--model NAME.safetensors --as transformer-lens``), so that ``unembed verify`` can
  compare what was written with the original.

Not read: a ``state_dict`` saved without that config (it holds no architecture, and
TransformerLens 3.x has no file format that does): refused with that reason.

Supported: ``transformer_lens`` 3.x (``HookedTransformer``; tested with 3.9.0). Releases 4.x
replace ``HookedTransformer`` with ``TransformerBridge``, which is not read here (refused with
that reason).
"""

from unembed.sources.tl_config import STATE_DICT_SUFFIXES, config_path
from unembed.sources.tlens.adapter import (
    TLModel,
    TLProcessing,
    detect_processing,
    is_hooked_transformer,
    load_hooked_transformer,
    tl_version,
)
from unembed.sources.tlens.hub import load_pretrained, named_tokenizer, official_name
from unembed.sources.tlens.state_dict import load_state_dict_file, load_written

__all__ = ["STATE_DICT_SUFFIXES", "TLModel", "TLProcessing", "config_path", "detect_processing",
           "is_hooked_transformer", "load_hooked_transformer", "load_pretrained",
           "load_state_dict_file", "load_written", "named_tokenizer", "official_name",
           "tl_version"]
