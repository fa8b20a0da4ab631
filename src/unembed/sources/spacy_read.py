"""Reading a saved spaCy pipeline (``nlp.to_disk``) without running code from it or reading
files it was not given.

``spacy.load(DIR)`` builds the pipeline from ``config.cfg`` (registered functions, called with
the values written there), then each component reads its files below ``DIR``. Three ways out,
each closed here (:func:`read_pipeline`):

* files outside ``DIR``: every entry below it must be a regular file or a directory whose
  symbolic links stay inside (:func:`unembed.sources._paths.check_tree`: a component's
  ``model`` file, a component directory, ``vocab/strings.json``); a component ``source``\\ d from
  another pipeline (``[components.X] source = ...``, which spaCy loads from that path or
  package) is refused; and while spaCy builds and reads the pipeline, any file opened outside
  ``DIR`` and outside the installed software (the Python prefix and ``sys.path``: code and
  package data) is refused at the ``open`` itself (an audit hook, active only for that call),
  so a registered reader named in the config (``spacy.read_labels.v1`` with a path, ...) cannot
  read a file elsewhere either;
* code from a pickle: a torch-based layer (thinc's ``PyTorchShim``) stores its weights with
  ``torch.save`` and reads them with ``torch.load`` without ``weights_only``, which
  ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` turns into an unpickling that runs whatever the file
  holds. For the duration of the load every ``torch.load`` is made ``weights_only=True`` (an
  explicit argument, which that variable cannot override; the variable is also removed while
  the pipeline is read), so a payload is refused, never run, whatever the environment;
* TorchScript (thinc's ``PyTorchScriptShim``, ``torch.jit.load``): a program, refused.

Each refusal is one line naming the pipeline directory (exit 2 on the command line).
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from unembed._checks import UnembedError, read_text
from unembed.sources._paths import boundary, check_tree

__all__ = ["read_pipeline"]

_LOCK = threading.RLock()
#: Where reads are allowed while a pipeline is read (None: no pipeline is being read).
_ALLOWED: list[tuple[str, ...]] = []
_HOOKED = False
_ENV = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


class _OutsideRead(PermissionError):
    """An ``open`` outside the pipeline and the installed software, refused by the hook."""


#: The files refused by the hook during the current read (reported even if spaCy caught the
#: error the hook raised).
_REFUSED: list[str] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "open" or not _ALLOWED or not args:
        return
    target = args[0]
    if isinstance(target, int):
        return  # an already open descriptor
    try:
        real = os.path.realpath(os.fsdecode(target))
    except (TypeError, ValueError):
        return
    roots = _ALLOWED[-1]
    if not any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in roots):
        _REFUSED.append(real)
        raise _OutsideRead(real)


def _installed_roots() -> tuple[str, ...]:
    """Where installed software lives, which spaCy may read (code, package data): the Python
    prefixes, the site directories, the ``sys.path`` entries but the working directory, and
    the directories of the packages imported so far."""
    import site

    cwd = os.path.realpath(os.getcwd())
    places = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
              *site.getsitepackages(), site.getusersitepackages(), *(p for p in sys.path if p)}
    for name, mod in list(sys.modules.items()):
        f = getattr(mod, "__file__", None)
        if "." not in name and isinstance(f, str):
            places.add(os.path.dirname(os.path.dirname(f)))
    real = {os.path.realpath(p) for p in places if os.path.isdir(p)}
    return tuple(sorted(r for r in real if r != cwd and r != os.sep))


@contextmanager
def _reads_only_inside(root: Path) -> Iterator[None]:
    """Refuse every Python-level ``open`` outside ``root``'s boundary and the installed
    software for the duration (this thread's reads and any other's: the load is short)."""
    global _HOOKED
    with _LOCK:
        if not _HOOKED:
            sys.addaudithook(_audit)
            _HOOKED = True
        _REFUSED.clear()
        _ALLOWED.append((os.path.realpath(boundary(root)), *_installed_roots()))
        try:
            yield
        finally:
            _ALLOWED.pop()


@contextmanager
def _weights_only_torch(where: Path) -> Iterator[None]:
    """Every ``torch.load`` made ``weights_only=True`` and ``torch.jit.load`` refused, for the
    duration; ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` removed meanwhile."""
    if "torch" not in sys.modules:  # thinc imports torch when it has it: no torch layers
        yield
        return
    import torch

    orig_load, orig_jit = torch.load, torch.jit.load

    def load(f: Any, map_location: Any = None, pickle_module: Any = None, *,
             weights_only: Any = None, **kw: Any) -> Any:
        del pickle_module, weights_only  # never another unpickler, never weights_only=False
        try:
            return orig_load(f, map_location=map_location, weights_only=True, **kw)
        except pickle.UnpicklingError:
            raise UnembedError("a torch-based layer's weights hold pickled objects "
                                    "other than tensors, which unembed does not unpickle "
                                    "(torch.load with weights_only=True); refused.",
                               path=where) from None

    def jit_load(*args: Any, **kw: Any) -> Any:
        raise UnembedError("a layer is TorchScript (torch.jit.load runs the program it "
                                "holds), which unembed does not load; refused.", path=where)

    saved = os.environ.pop(_ENV, None)
    torch.load, torch.jit.load = load, jit_load
    try:
        yield
    finally:
        torch.load, torch.jit.load = orig_load, orig_jit
        if saved is not None:
            os.environ[_ENV] = saved


def _refuse_sourced(path: Path) -> None:
    """A component ``source``\\ d from another pipeline is read from that path or package:
    refused (the config is parsed without interpolation; one spaCy cannot parse is left to
    ``spacy.load`` to report)."""
    from thinc.api import Config

    cfg_file = path / "config.cfg"
    try:
        cfg = Config().from_str(read_text(cfg_file, "spaCy config"), interpolate=False)
    except UnembedError:
        raise
    except Exception:
        return
    components = cfg.get("components")
    if not isinstance(components, dict):
        return
    for name, block in components.items():
        if isinstance(block, dict) and "source" in block:
            raise UnembedError(f"the component {name!r} is sourced from another "
                                       f"pipeline ({str(block['source'])[:80]!r}), which spaCy "
                                       f"would read from there; unembed reads only the "
                                       f"directory named. Refused.", path=cfg_file)


def read_pipeline(path: Path) -> Any:
    """``spacy.load(path)`` with the guards of the module docstring; a refusal is an
    UnembedError naming ``path``. Other errors of spaCy pass through to the caller."""
    import spacy  # imports thinc, and torch where installed

    check_tree(path, "spaCy pipeline")
    _refuse_sourced(path)
    with _LOCK, _weights_only_torch(path), _reads_only_inside(path):
        try:
            nlp = spacy.load(path)
        except UnembedError:
            raise
        except Exception:
            if not _REFUSED:
                raise
            nlp = None
        if _REFUSED:  # refused even where spaCy caught the error and went on
            raise UnembedError(f"reading the pipeline would open {_REFUSED[0]}, outside "
                               f"the "
                               f"directory named and the installed software; refused.", path=path)
        return nlp
