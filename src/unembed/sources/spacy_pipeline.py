"""spaCy pipelines: the softmax output layer of a tagger, exactly, with its labels.

A spaCy ``tagger`` (architecture ``spacy.Tagger.v2``) is ``chain(tok2vec, with_array(Softmax_v2))``.
For each token, with h in R^d the tok2vec output at that token,

    z = W h + b,   p(tag) = softmax(z / T)

with ``W`` (nO, d) and ``b`` (nO,) the Softmax layer's parameters, ``T`` its
``softmax_temperature`` (1 unless configured) and row i belonging to ``tagger.labels[i]`` (the
tagger writes ``labels[argmax z]``). At inference spaCy's Softmax_v2 returns z itself
(``normalize_outputs=False``); the older ``spacy.Tagger.v1`` layer returns p (then the model's
logits are taken as log p: the same softmax). The head read here
is ``W``, ``b`` with ``logit_scale = 1 / T``; the hidden states are the tok2vec outputs
(one row per token, flattened over documents), computed by running the components before the
tagger (so a tagger listening to a shared ``tok2vec`` component gets that component's output)
and then every layer of the tagger's model but the last.

What is not read, and why (each refused with this reason):

* ``parser``, ``ner`` (transition-based): the action layer scores the *moves* of a parser state
  from a hidden vector built from several tokens of that state, and moves invalid in the state
  are masked out before the argmax (their scores replaced by a large negative number): the
  probabilities are those of a state-dependent subset of rows, and there is no per-token hidden
  state to audit. Not claimed.
* ``morphologizer``, ``senter``, ``textcat``, ``spancat`` and others: their output layers map
  rows to labels in their own ways (feature bundles, sentence starts, independent sigmoids over
  spans); not read yet.
* a hierarchical softmax (fastText's ``loss='hs'``) has no row per label at all (see
  :mod:`unembed.sources.fasttext_model`).

Supported: spaCy 3.8 (thinc 8.3), ``spacy.Tagger.v1`` and ``v2``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from unembed import _reprs
from unembed._checks import fail
from unembed.head import Head, logits_to_log_probs

if TYPE_CHECKING:
    from unembed.export import ExportResult

__all__ = ["SpacyTagger", "SpacyTexts", "is_spacy_dir", "is_spacy_language", "load_spacy"]

_READ = ("tagger",)
_TRANSITION = ("parser", "ner", "beam_parser", "beam_ner")


def is_spacy_dir(path: Path) -> bool:
    """A saved pipeline (``nlp.to_disk``): ``config.cfg`` and ``meta.json``."""
    return (path / "config.cfg").is_file() and (path / "meta.json").is_file()


def is_spacy_language(obj: object) -> bool:
    """Whether ``obj`` is a spaCy ``Language`` (without importing spaCy when it is not
    already imported)."""
    import sys

    mod = sys.modules.get("spacy.language")
    return mod is not None and isinstance(obj, mod.Language)


def _factory(nlp: Any, name: str) -> str:
    return str(nlp.get_pipe_meta(name).factory)


def _pick_component(nlp: Any, component: str | None, where: str) -> str:
    names = list(nlp.pipe_names)
    if component is not None:
        if component not in names:
            raise fail(f"{where}: no component {component!r} in the pipeline (it has "
                       f"{', '.join(names) or 'none'}).")
        fac = _factory(nlp, component)
        if fac in _TRANSITION:
            raise fail(f"{where}: component {component!r} ({fac}) is transition-based: its "
                       f"action layer scores the moves of a parser state from several tokens "
                       f"at once, with the moves invalid in that state masked out before the "
                       f"argmax, so it has no per-token head whose probabilities are "
                       f"softmax(W h + b); unembed reads taggers ({', '.join(_READ)}).")
        if fac not in _READ:
            raise fail(f"{where}: component {component!r} ({fac}) is not read by unembed: its "
                       f"output layer maps rows to labels in its own way; unembed reads "
                       f"taggers ({', '.join(_READ)}).")
        return component
    found = [n for n in names if _factory(nlp, n) in _READ]
    if not found:
        have = ", ".join(f"{n} ({_factory(nlp, n)})" for n in names) or "none"
        raise fail(f"{where}: the pipeline has no tagger (components: {have}); unembed reads "
                   f"the softmax of taggers; transition-based parser and NER action layers "
                   f"are masked per parser state and are not read.")
    if len(found) > 1:
        raise fail(f"{where}: the pipeline has several taggers ({', '.join(found)}); name "
                   f"one (component=... / --component).")
    return found[0]


class SpacyTagger:
    """A spaCy tagger's head (see the module docstring).

    Attributes
    ----------
    head : Head
        ``W`` (nO, d), ``b`` (nO,), labels ``tagger.labels``, ``logit_scale = 1 / T``.
    kind : str
        "spacy".
    nlp : spacy.Language
    component : str
        The tagger's name in the pipeline.
    """

    kind = "spacy"
    __repr__ = _reprs.model_repr
    _repr_html_ = _reprs.model_html

    def __init__(self, nlp: Any, component: str, *, source: str, strict: bool = True) -> None:
        self.nlp = nlp
        self.component = component
        self.source = source
        pipe = nlp.get_pipe(component)
        model = pipe.model
        last = model.layers[-1] if model.layers else None
        out = last.layers[0] if last is not None and last.name.startswith("with_array") \
            and last.layers else last
        if out is None or out.name != "softmax" or not out.has_param("W"):
            raise fail(f"{source}: the tagger {component!r} does not end in a Softmax layer "
                       f"(its model is {model.name[-80:]!r}); cannot read its head exactly.")
        assert last is not None
        self.out = out
        self.last: Any = last
        # Softmax (v1) and Softmax_v2 with normalize_outputs=True return p at inference
        self.normalizes = bool(out.attrs.get("softmax_normalize", True))
        temperature = float(out.attrs.get("softmax_temperature", 1.0))
        W = np.asarray(out.get_param("W"))
        b = np.asarray(out.get_param("b"))
        labels = tuple(str(x) for x in pipe.labels)
        if W.shape[0] != len(labels):
            raise fail(f"{source}: the tagger {component!r} has {len(labels)} labels but its "
                       f"output layer has {W.shape[0]} rows.")
        self.dtype = str(W.dtype)
        meta = {"source": f"{source} (component {component!r})", "family": "spacy tagger",
                "component": component, "architecture": model.name[-40:],
                "softmax_temperature": temperature,
                "outputs": "probabilities" if self.normalizes else "logits",
                "labels_from": f"the {component!r} component",
                "notes": [f"hidden state: the tok2vec output at each token (d = {W.shape[1]})"],
                "spacy_version": _spacy_version()}
        self.head = Head(W=W, b=b, labels=labels, link="softmax",
                         logit_scale=1.0 / temperature, reparam=False, dtype=self.dtype,
                         meta=meta, strict=strict,
                         reparam_reason="spaCy's tok2vec ends in a residual sum (x + f(x)), not "
                                        "in an affine map that could absorb an invertible A")
        self._verified = False

    # ------------------------------------------------------------------ running the model
    def docs(self, inputs: Any) -> list[Any]:
        """Texts (a string or a list of strings) or Docs, run through the components before
        the tagger."""
        from spacy.tokens import Doc

        if isinstance(inputs, (str, Doc)):
            inputs = [inputs]
        if not isinstance(inputs, (list, tuple)) or not all(isinstance(x, (str, Doc))
                                                            for x in inputs):
            raise fail("The 'inputs' argument of a spaCy tagger must be text, a list of texts "
                       "or spaCy Docs.")
        docs = [x if isinstance(x, Doc) else self.nlp.make_doc(x) for x in inputs]
        for name, proc in self.nlp.pipeline:
            if name == self.component:
                break
            docs = list(proc.pipe(docs))
        return docs

    def forward(self, inputs: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(hidden states (n, d), the tagger's logits (n, V)) in float64, one row per token;
        the logits are those the tagger computes (for Softmax v1, the log of its
        probabilities: the same softmax)."""
        docs = self.docs(inputs)
        d, v = self.head.d, self.head.n_labels
        if not docs or sum(len(doc) for doc in docs) == 0:
            return np.zeros((0, d)), np.zeros((0, v))
        model = self.nlp.get_pipe(self.component).model
        x: Any = docs
        for layer in model.layers[:-1]:
            x = layer.predict(x)
        h = np.concatenate([np.asarray(a, dtype=np.float64).reshape(-1, d) for a in x])
        y = self.last.predict(x)
        z = np.concatenate([np.asarray(a, dtype=np.float64).reshape(-1, v) for a in y])
        if self.normalizes:
            with np.errstate(divide="ignore"):
                z = np.log(z)
        else:
            z = z * self.head.logit_scale
        if not self._verified:
            self._check(h, z)
        return h, z

    def _check(self, h: NDArray[np.float64], z: NDArray[np.float64]) -> None:
        mine = self.head.logits(h)
        if self.normalizes:
            mine = logits_to_log_probs(mine, "softmax")
        from unembed.sources._torch import check_logits_equal

        check_logits_equal(self.source, "the tagger's scores (of its tok2vec output)", mine, z,
                           self.dtype)
        self._verified = True

    def hidden_states(self, inputs: Any) -> NDArray[np.float64]:
        """The tok2vec output at every token (n, d), float64."""
        return self.forward(inputs)[0]

    def model_logits(self, inputs: Any) -> NDArray[np.float64]:
        """The tagger's own scores (n, V), float64."""
        return self.forward(inputs)[1]

    def layer_logits(self, h: NDArray[np.float64]) -> NDArray[np.float64]:
        """The Softmax layer itself run on hidden states (n, d) (for Softmax v1: the log of
        its probabilities), float64."""
        y = np.asarray(self.out.predict(np.asarray(h, dtype=np.float32)), dtype=np.float64)
        if self.normalizes:
            return np.log(y)
        return y * self.head.logit_scale

    def open_text(self, path: str | os.PathLike[str], *, max_inputs: int | None = None
                  ) -> SpacyTexts:
        """Audit data: one text per line (``.txt``) or JSON lines with a "text" field."""
        return SpacyTexts(Path(path), self, max_inputs=max_inputs)

    def with_head(self, head: Head) -> SpacyTagger:
        """A copy of the pipeline whose tagger has W = head.W, b = head.b (same shape)."""
        import copy

        if head.W.shape != self.head.W.shape:
            raise fail(f"The new head has shape {head.W.shape}; this tagger's is "
                       f"{self.head.W.shape}.")
        nlp = copy.deepcopy(self.nlp)
        last = nlp.get_pipe(self.component).model.layers[-1]
        out = last.layers[0] if last.name.startswith("with_array") else last
        dt = np.dtype(self.dtype)
        out.set_param("W", np.ascontiguousarray(head.W, dtype=dt))
        out.set_param("b", np.ascontiguousarray(head.bias, dtype=dt))
        return SpacyTagger(nlp, self.component, source=self.source, strict=head.strict)


def _spacy_version() -> str:
    import spacy

    return str(spacy.__version__)


class SpacyTexts:
    """Texts for a spaCy tagger's audit: one per line (blank lines skipped) or JSON lines with
    a "text" field; every token of a text is one prediction."""

    def __init__(self, path: Path, model: SpacyTagger, *, max_inputs: int | None = None) -> None:
        if not path.is_file():
            raise fail(f"{path}: no such data file.")
        self.path = path
        self.model = model
        self.max_inputs = max_inputs

    def texts(self) -> Iterator[str]:
        jsonl = self.path.suffix.lower() in (".jsonl", ".ndjson")
        n = 0
        with open(self.path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                if self.max_inputs is not None and n >= self.max_inputs:
                    return
                if jsonl:
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise fail(f"{self.path}: line {lineno} is not valid JSON ({e}).") \
                            from None
                    if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
                        raise fail(f"{self.path}: line {lineno} has no string field 'text'.")
                    yield rec["text"]
                else:
                    yield line.rstrip("\n")
                n += 1

    def batches(self, batch_size: int) -> Iterator[list[str]]:
        buf: list[str] = []
        for t in self.texts():
            buf.append(t)
            if len(buf) == batch_size:
                yield buf
                buf = []
        if buf:
            yield buf

    def predictions_per_input(self) -> int:
        return 1

    def size_hint(self) -> int | None:
        return sum(1 for _ in self.texts())

    def describe(self, indices: Sequence[int], model: Any) -> dict[int, str]:
        """For prediction i: the text it is in, with the token in brackets."""
        want = sorted({int(i) for i in indices})
        out: dict[int, str] = {}
        seen = 0
        for ti, text in enumerate(self.texts()):
            doc = self.model.nlp.make_doc(text)
            for i in want:
                if seen <= i < seen + len(doc):
                    t = i - seen
                    words = [tok.text for tok in doc]
                    words[t] = f"[{words[t]}]"
                    out[i] = f"text {ti}, token {t}: {' '.join(words)[:160]!r}"
            seen += len(doc)
            if len(out) == len(want):
                break
        return out


def load_spacy(source: Any, *, component: str | None = None, strict: bool = True
               ) -> SpacyTagger:
    """Read the tagger of a spaCy pipeline: a ``Language`` object or a saved pipeline
    directory (``nlp.to_disk``; read with ``spacy.load``, no pickle). ``component`` names the
    tagger when there are several."""
    if isinstance(source, (str, os.PathLike)):
        import spacy

        p = Path(source)
        try:
            nlp = spacy.load(p)
        except (OSError, ValueError, KeyError) as e:
            raise fail(f"{p}: not a loadable spaCy pipeline ({type(e).__name__}: "
                       f"{str(e).splitlines()[0][:200]}).") from None
        where = str(p)
    else:
        nlp, where = source, f"spaCy pipeline {source.meta.get('name', '')!s}".strip()
    name = _pick_component(nlp, component, where)
    out = SpacyTagger(nlp, name, source=where, strict=strict)
    probe = out.forward(["the cat sat on the mat"])  # verify now
    del probe
    return out


def export_spacy(model: SpacyTagger, head: Head, out: Path, tmp: Path, inputs: Any,
                 seed: int) -> ExportResult:
    """Write the pipeline with the tagger's W, b replaced by ``head``'s to the directory
    ``tmp`` (``nlp.to_disk``), re-read it with ``spacy.load`` and compare it with the original
    on ``inputs`` (texts; default: random hidden states fed to both Softmax layers); raises
    unless equivalent (:func:`unembed.export.export_model` moves ``tmp`` to ``out``)."""
    import spacy

    from unembed.equivalence import compare_logits, random_hidden
    from unembed.export import ExportResult, require_equivalent

    notes: list[str] = []
    new = model.with_head(head)
    new.nlp.to_disk(tmp)
    reread = SpacyTagger(spacy.load(tmp), model.component, source=str(out), strict=head.strict)
    if inputs is None:
        notes.append("no inputs given: verified on random hidden states fed to the tagger's "
                     "Softmax layer")
        h = random_hidden(model.head, 256, seed=seed)
        z_old, z_new = model.layer_logits(h), reread.layer_logits(h)
    else:
        z_old, z_new = model.model_logits(inputs), reread.model_logits(inputs)
    eq = compare_logits(z_old, z_new, "softmax", dtype=model.dtype)
    require_equivalent(eq, out, "spaCy pipeline")
    return ExportResult(out=out, kind=model.kind, head=reread.head, equivalence=eq,
                        notes=tuple(notes))
