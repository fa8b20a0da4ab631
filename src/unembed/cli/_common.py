"""Shared CLI pieces: how a head is named on the command line, and how results are printed."""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from typing import Any

from unembed._io import is_pickle
from unembed._json import jsonable
from unembed.head import Head


def add_head_args(p: argparse.ArgumentParser, *, positional: str | None = "head") -> None:
    """Options that name one head: a weight file spec (or --model), bias, labels, link."""
    if positional:
        p.add_argument(positional, metavar="HEAD", nargs="?",
                       help="weight file of shape (V, d): PATH or PATH:TENSOR "
                            "(.npy, .pt/.pth/.bin read with weights_only=True, .safetensors); "
                            "optional with --model")
    p.add_argument("--model", metavar="PATH",
                   help="a model instead of a weight file: a local HuggingFace directory "
                        "(causal LM or image classifier), a hub name ORG/NAME read from the "
                        "local hub cache (never downloaded), a spaCy pipeline directory, or a "
                        "pickled scikit-learn estimator (.pkl, needs --trust-pickle)")
    p.add_argument("--component", metavar="NAME",
                   help="with a spaCy pipeline: the tagger component to read (default: the "
                        "only one)")
    p.add_argument("--revision", metavar="REV",
                   help="with a hub name: the branch, tag or commit hash in the hub cache "
                        "(default: main)")
    p.add_argument("--fold", action="store_true",
                   help="with --model: fold the final norm's gain (and shift) into the head "
                        "(the 'folded' view; default: the raw stored rows)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow unpickling --model FILE (a pickle can run code: only for files "
                        "you trust)")
    p.add_argument("--bias", metavar="FILE", help="bias file of shape (V,): PATH or PATH:TENSOR")
    p.add_argument("--labels", metavar="FILE",
                   help="labels: one per line, or a JSON list / id2label dict")
    p.add_argument("--link", choices=("softmax", "sigmoid"), default="softmax",
                   help="how logits become probabilities (default: softmax)")
    p.add_argument("--softcap", type=float, default=None, metavar="CAP",
                   help="the logits pass through CAP * tanh(z / CAP)")
    p.add_argument("--allow-degenerate", action="store_true",
                   help="accept all-zero and identical rows (padding rows of real checkpoints)")
    add_device_args(p)


def add_device_args(p: argparse.ArgumentParser) -> None:
    """--device and --model-dtype: where and in what precision a torch model runs."""
    p.add_argument("--device", default=None, metavar="DEV",
                   help="where a torch model's forward passes run: cpu, cuda, cuda:1, mps "
                        "(default: CUDA when present, else the CPU)")
    p.add_argument("--model-dtype", default=None, metavar="DTYPE",
                   help="dtype of a torch model's forward passes: float32, float16, bfloat16, "
                        "float64 (default: the checkpoint's own; the head analysed is always "
                        "the checkpoint's)")


def add_json_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object for scripts")


def model_loader(args: argparse.Namespace, spec: str | None = None) -> functools.partial[Any]:
    """``load(...)`` of the model named by ``--model`` or the positional weight file, with the
    options given, as a picklable call (``spec`` overrides both); workers of ``--engine ray``
    run it themselves."""
    from unembed._checks import fail
    from unembed.sources import load

    source = spec if spec is not None else getattr(args, "model", None)
    if source is None:
        source = getattr(args, "head", None)
    if source is None:
        raise fail("name a head: a weight file HEAD, or --model PATH.")
    return functools.partial(
        load,
        source,
        fold=getattr(args, "fold", False),
        trust_pickle=getattr(args, "trust_pickle", False),
        labels=args.labels,
        bias=args.bias,
        link=args.link,
        softcap=args.softcap,
        strict=not args.allow_degenerate,
        device=getattr(args, "device", None),
        model_dtype=getattr(args, "model_dtype", None),
        revision=getattr(args, "revision", None),
        head_name=getattr(args, "component", None),
    )


def load_model(args: argparse.Namespace, spec: str | None = None) -> Any:
    """The model (a LoadedModel) named by ``--model`` or the positional weight file; ``spec``
    overrides both."""
    return model_loader(args, spec)()


def add_engine_args(p: argparse.ArgumentParser, *, workers_help: str) -> None:
    """--engine, --address, --workers."""
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="'ray': spread the work over Ray workers (pip install 'unembed[ray]'; "
                        "default: this machine's processes)")
    p.add_argument("--address", default=None, metavar="ADDR",
                   help="with --engine ray: the cluster to join (default: start a local Ray)")
    p.add_argument("--workers", type=int, default=None, metavar="N", help=workers_help)


def ray_engine(args: argparse.Namespace) -> Any:
    """The RayEngine the options ask for, or None for --engine local."""
    if args.engine != "ray":
        if args.address is not None:
            from unembed._checks import fail

            raise fail("--address needs --engine ray.")
        return None
    import os

    from unembed.engine import RayEngine

    return RayEngine(workers=args.workers or max(1, min(8, os.cpu_count() or 1)),
                     address=args.address)


def load_head(args: argparse.Namespace, spec: str | None = None) -> Head:
    """The head named by the parsed options (``spec`` overrides the positional file)."""
    import os

    from unembed.sources import load_head_file

    target = spec if spec is not None else args.head
    if getattr(args, "model", None) is not None and spec is None:
        return load_model(args).head
    from unembed.sources.hub_cache import find as find_in_hub_cache

    revision = getattr(args, "revision", None)
    if target is not None and (os.path.isdir(target) or is_pickle(target)
                               or find_in_hub_cache(target, revision)):
        return load_model(args, target).head
    if target is None:
        return load_model(args).head
    return load_head_file(
        target,
        bias=args.bias,
        labels=args.labels,
        link=args.link,
        softcap=args.softcap,
        strict=not args.allow_degenerate,
    )


def print_json(obj: Any) -> None:
    json.dump(jsonable(obj), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def fmt(x: float, digits: int = 6) -> str:
    return f"{x:+.{digits}f}" if math.isfinite(x) else str(x)
