"""``unembed verify A B`` (or ``--model A --model2 B``: a positional names the same model
source as its option): do two models, or two heads, give the same probabilities? What was
compared on what is said with the verdict:

* two whole models (directories, estimators, pipelines, TransformerLens models): each model's
  own forward pass on the same inputs: the data of ``--data FILE``, else random inputs the
  first model draws (token sequences, images, feature vectors);
* otherwise (a bare head, a weight file, on either side; or two models that draw no random
  inputs, such as spaCy pipelines, without ``--data``): the heads, on the hidden states of
  ``--data`` (a weight file's: the .npy rows; a model's: its hidden states of the data), else
  on random hidden states (:func:`unembed.equivalence.random_hidden`)."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from unembed.cli._data import add_data_args
from unembed.cli._loading import head_source, load_model
from unembed.cli._options import add_deprecated_alias, add_head_args, add_json_arg, positive_int
from unembed.cli._print import print_json
from unembed.equivalence import Equivalence
from unembed.model import LoadedModel

#: random inputs without --data: hidden states for heads, inputs (sequences) for models
N_RANDOM_HIDDEN, N_RANDOM_INPUTS, SEQUENCE_LENGTH = 1024, 8, 16


def register(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("verify", help="compare two models' (or heads') probabilities",
                       description="Compare the probabilities of two models on the same "
                                   "inputs: max |dp|, max |dlog p|, mean KL, argmax agreement. "
                                   "Two whole models are run end to end (on --data, else on "
                                   "random inputs the first draws); a weight file on either "
                                   "side, or models that draw no random inputs (spaCy) "
                                   "without --data, are compared by their heads on hidden "
                                   "states. The output says which, on what. Exit status 0 "
                                   "when equivalent within the dtype's tolerance, 1 when not.")
    add_head_args(p)
    p.add_argument("head2", metavar="HEAD2", nargs="?",
                   help="the second model: any source HEAD takes (the same as --model2)")
    p.set_defaults(_positionals=("head2",), _required=())
    p.add_argument("--model2", metavar="PATH",
                   help="the same as HEAD2: the second model, compared with HEAD / --model "
                        "(with --as transformer-lens: also a state dict that counterexample "
                        "wrote, its NAME.tl_config.json beside it)")
    p.add_argument("--bias2", metavar="FILE", help="bias of HEAD2 (default: --bias)")
    add_data_args(p, help="the inputs to compare on: for two models what they take (text / "
                          ".jsonl for language models and spaCy pipelines, .npy token ids, "
                          "images or features); for heads a .npy of hidden states (n, d), or "
                          "the first model's hidden states of its inputs. Default: random "
                          "ones")
    add_deprecated_alias(p, "--inputs", "--data", dest="data", metavar="FILE")
    p.add_argument("-n", "--n-random", type=positive_int, default=None,
                   help=f"without --data: how many random inputs: hidden states for heads "
                        f"(default {N_RANDOM_HIDDEN}), sequences of {SEQUENCE_LENGTH} tokens "
                        f"or inputs for models (default {N_RANDOM_INPUTS})")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed for the random inputs (default 0)")
    add_json_arg(p)
    return p


def _second(args: argparse.Namespace) -> str:
    """The second model's source: HEAD2 or --model2 (one of them), after the first."""
    from unembed._checks import UnembedError

    if args.model2 is not None and args.head2 is not None:
        raise UnembedError("name the second model once: HEAD2 or --model2, not both.")
    if args.model is None and args.head is None:
        if args.model2 is not None:
            raise UnembedError("--model2 needs --model (or HEAD): the first of the two models.")
        raise UnembedError("name two models: A B, or --model A --model2 B.")
    second = args.model2 if args.model2 is not None else args.head2
    if second is None:
        raise UnembedError("name the second model: HEAD2 or --model2 (the first is "
                           f"{head_source(args)}).")
    return str(second)


def _random_inputs(model: LoadedModel, n: int, seed: int) -> Any:
    """n random inputs the model draws, or None when it draws none (a pipeline's texts)."""
    from unembed._checks import UnembedError

    try:
        return model.random_inputs(n, SEQUENCE_LENGTH, seed=seed)
    except UnembedError:
        return None


def compare(args: argparse.Namespace, m1: LoadedModel,
            m2: LoadedModel) -> tuple[str, str, Equivalence, str | None]:
    """(what was compared: "models" or "heads", on what (words), the figures, a note)."""
    from unembed.equivalence import (
        compare_heads,
        compare_models,
        compare_models_on,
        describe_random_hidden,
        merge_equivalences,
        random_hidden,
    )

    whole = m1.kind != "file" and m2.kind != "file"
    if args.data is not None and whole:
        from unembed.data import open_data

        data = open_data(args.data, m1, window=args.window, max_inputs=args.max_inputs)
        eq = compare_models_on(m1, m2, data.batches(args.batch_size))
        return "models", f"the data {args.data} ({eq.n_inputs} inputs)", eq, None
    if args.data is not None:
        from unembed.cli._data import view_data

        spec = view_data(args, m1)
        assert spec is not None
        eq = merge_equivalences([compare_heads(m1.head, m2.head, h) for h in spec.batches()])
        whose = "" if m1.kind == "file" else "the first model's hidden states of "
        return "heads", f"{whose}the data {args.data} ({eq.n_inputs} hidden states)", eq, None
    note = None
    if whole:
        n = args.n_random or N_RANDOM_INPUTS
        inputs = _random_inputs(m1, n, args.seed)
        if inputs is not None:
            eq = compare_models(m1, m2, inputs)
            arr = np.asarray(inputs) if isinstance(inputs, np.ndarray) else None
            if arr is not None and arr.dtype.kind in "iu" and arr.ndim == 2:
                on = (f"{eq.n_inputs} token inputs drawn at random ({arr.shape[0]} sequences "
                      f"of {arr.shape[1]} random token ids, seed {args.seed})")
            else:
                on = (f"{eq.n_inputs} random inputs drawn by the first model ({m1.kind}, "
                      f"seed {args.seed})")
            return "models", on, eq, None
        note = (f"these models ({m1.kind}) draw no random inputs: their heads were compared; "
                f"pass --data FILE to compare the models end to end")
    H = random_hidden(m1.head, args.n_random or N_RANDOM_HIDDEN, seed=args.seed)
    eq = compare_heads(m1.head, m2.head, H)
    return "heads", describe_random_hidden(H, args.seed), eq, note


def run(args: argparse.Namespace) -> int:
    second = _second(args)
    first = head_source(args)
    m1 = load_model(args)
    bias = args.bias
    if args.bias2 is not None:
        args.bias = args.bias2
    try:
        m2 = load_model(args, second)
    finally:
        args.bias = bias
    what, on, eq, note = compare(args, m1, m2)
    compared = f"the {what}' probabilities on {on}"
    if args.json:
        print_json({"first": first, "second": second, "compared": what,
                    "on": on, "what": compared, "data": args.data,
                    "seed": None if args.data is not None else args.seed,
                    **({"note": note} if note else {}), **eq.to_dict()})
    else:
        print(f"{first}  vs  {second}")
        print(f"compared: {compared}")
        if note:
            print(f"note: {note}")
        print(eq.verdict)
    return 0 if eq.equivalent else 1
