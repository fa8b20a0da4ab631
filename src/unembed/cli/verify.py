"""``unembed verify HEAD1 HEAD2``: do two heads give the same probabilities?"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from unembed.cli._common import add_head_args, add_json_arg, load_head, print_json
from unembed.equivalence import compare_heads


def register(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("verify", help="compare two heads' probabilities on inputs",
                       description="Compare the probabilities of two heads on the same hidden "
                                   "states: max |dp|, max |dlog p|, mean KL, argmax agreement.")
    add_head_args(p, positional="head")
    p.add_argument("head2", metavar="HEAD2", help="the second weight file (PATH or PATH:TENSOR)")
    p.add_argument("--bias2", metavar="FILE", help="bias of HEAD2 (default: --bias)")
    p.add_argument("--inputs", metavar="FILE",
                   help="hidden states (n, d) as .npy (default: random ones)")
    p.add_argument("-n", "--n-random", type=int, default=1024,
                   help="number of random hidden states (default 1024)")
    p.add_argument("--seed", type=int, default=0)
    add_json_arg(p)
    return p


def run(args: argparse.Namespace) -> int:
    h1 = load_head(args)
    bias = args.bias
    if args.bias2 is not None:
        args.bias = args.bias2
    h2 = load_head(args, args.head2)
    args.bias = bias
    H = None
    if args.inputs:
        from unembed.sources.files import read_tensor

        H = np.asarray(read_tensor(args.inputs, ndim=2).array, dtype=np.float64)
    eq = compare_heads(h1, h2, H, n_random=args.n_random, seed=args.seed)
    if args.json:
        print_json({"head1": h1.meta.get("source"), "head2": h2.meta.get("source"),
                    **eq.to_dict()})
    else:
        print(f"{h1.meta.get('source')}  vs  {h2.meta.get('source')}")
        print(eq.verdict)
    return 0 if eq.equivalent else 1
