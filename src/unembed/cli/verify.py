"""``unembed verify HEAD1 HEAD2`` (or ``--model A --model2 B``): do two heads, or two whole
models, give the same probabilities?"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from unembed.cli._loading import head_source, load_head, load_model
from unembed.cli._options import add_head_args, add_json_arg, positive_int
from unembed.cli._print import print_json
from unembed.equivalence import compare_heads, compare_models


def register(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("verify", help="compare two heads' (or models') probabilities on inputs",
                       description="Compare the probabilities of two heads on the same hidden "
                                   "states, or of two models (--model, --model2) on the same "
                                   "inputs: max |dp|, max |dlog p|, mean KL, argmax agreement. "
                                   "Exit status 0 when equivalent within the dtype's "
                                   "tolerance, 1 when not.")
    add_head_args(p)
    p.add_argument("head2", metavar="HEAD2", nargs="?",
                   help="the second weight file (PATH or PATH:TENSOR)")
    p.set_defaults(_positionals=("head2",), _required=())
    p.add_argument("--model2", metavar="PATH",
                   help="the second model, compared with --model end to end on the same "
                        "inputs (with --as transformer-lens: also a state dict that "
                        "counterexample wrote, its NAME.tl_config.json beside it)")
    p.add_argument("--bias2", metavar="FILE", help="bias of HEAD2 (default: --bias)")
    p.add_argument("--inputs", metavar="FILE",
                   help=".npy: hidden states (n, d) for heads; for models what they take "
                        "(token ids (n, T), pixel arrays, features). Default: random ones")
    p.add_argument("-n", "--n-random", type=positive_int, default=1024,
                   help="number of random hidden states (default 1024; 8 sequences of 16 "
                        "tokens or 8 inputs for models)")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed for the random inputs (default 0)")
    add_json_arg(p)
    return p


def run(args: argparse.Namespace) -> int:
    from unembed._checks import UnembedError

    H = None
    if args.inputs:
        from unembed.sources.files import read_npy

        if not str(args.inputs).endswith(".npy"):
            raise UnembedError(f"{args.inputs}: --inputs must be an .npy file.")
        H = read_npy(args.inputs, numeric=True)
        from unembed._checks import check_finite_rows

        check_finite_rows(H, str(args.inputs))
    if args.model2 is not None:
        if args.head2 is not None:
            raise UnembedError("name the second model once: HEAD2 or --model2, not both.")
        if args.model is None and args.head is None:
            raise UnembedError("--model2 needs --model (or HEAD): the first of the two models.")
        first = head_source(args)
        m1, m2 = load_model(args), load_model(args, args.model2)
        eq = compare_models(m1, m2, H, n=min(args.n_random, 8), seed=args.seed)
        names: tuple[Any, Any] = (first, args.model2)
    else:
        if args.head2 is None:
            raise UnembedError("name the second head: HEAD2, or --model and --model2 for two "
                               "models.")
        h1 = load_head(args)
        bias = args.bias
        if args.bias2 is not None:
            args.bias = args.bias2
        h2 = load_head(args, args.head2)
        args.bias = bias
        if H is not None:
            H = np.asarray(H, dtype=np.float64)
        eq = compare_heads(h1, h2, H, n_random=args.n_random, seed=args.seed)
        names = (h1.source, h2.source)
    if args.json:
        print_json({"first": names[0], "second": names[1], **eq.to_dict()})
    else:
        print(f"{names[0]}  vs  {names[1]}")
        print(eq.verdict)
    return 0 if eq.equivalent else 1
