"""spaCy pipelines: the output layers of taggers, morphologizers, sentence recognizers,
parsers and NER, exactly, with their labels.

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

Transition-based ``parser`` and ``ner`` (:class:`SpacyTransition`; spaCy 3.8's
``spacy.TransitionBasedParser.v1/v2``, a ``TransitionModel`` of ``tok2vec``, ``lower``
(``PrecomputableAffine``) and ``upper`` (a thinc ``Linear``)). For each parser state s, spaCy
sums the lower layer's precomputed features of the state's ``nF`` context tokens (a learned
padding vector for absent ones), adds the lower bias and takes the maxout over ``nP`` pieces:
that state vector h(s) in R^nH is the input of the upper layer, and

    z(s) = W h(s) + b,       W = upper.W (nO, nH), b = upper.b (nO,)

scores the ``nO`` moves, row i belonging to the move ``moves.get_class_name(i)`` ("L-nsubj",
"R-dobj", "S", "D", "B-ROOT" for the parser; "B-ORG", "I-ORG", "L-ORG", "U-ORG", "O" for NER).
The head read is that W, b; the hidden states are h(s) for every state of the greedy parse of
the inputs (one prediction per transition, computed with spaCy's own step model:
``get_token_ids``, ``state2vec``, then ``transition_states``), and the parse they produce is
checked to be the one spaCy's ``predict`` (its C loop) produces.

What is and is not covered there:

* spaCy never computes a softmax at parse time: it takes the argmax of z(s) *over the moves
  valid in s* (invalid moves are skipped, not scored lower). Translating every row by c, or
  shifting every bias by the same amount, adds one number to every score of a state, so it
  keeps every masked argmax and every softmax restricted to the valid moves: the symmetry
  claims hold per state, whatever the mask. The probabilities unembed reports are
  softmax(z(s)) over *all* moves read: the distribution spaCy's training loss normalises over
  (``cpu_log_loss``), which the parse itself never uses. Answers about which moves can be the
  argmax or the top two (``argmaxable``, ``feasible``) are over all moves: a move that is never
  the argmax over all moves can still be chosen in states where the moves beating it are
  invalid, so "not argmaxable" does not mean "never chosen by the parser".
* moves never seen in training ("unseen classes") get the batch's minimum score instead of
  W h + b (and their rows stay at the zero initialisation): they are left out of the head,
  and named in ``head.meta["unseen_moves"]``.
* refused, with the reason: beam search (``beam_width`` > 1: which states are scored depends
  on the beam), ``use_upper = false`` (the scores are the lower layer's maxout output: no
  linear layer over a hidden state), and ``maxout_pieces = 1`` (spaCy 3.8's greedy C loop feeds
  the upper layer the state vector as is, its Python step model the ReLU of it: two different
  hidden states).
* reparametrization is not claimed: h(s) is a maxout, not the output of an affine map that
  could absorb an invertible A.

What is not read, and why (each refused with this reason):

* ``textcat``, ``textcat_multilabel``, ``spancat``, ``entity_linker`` and others: their output
  layers map rows to labels in their own ways (document-level ensembles, independent sigmoids
  over spans, candidate ranking); not read yet.
* a hierarchical softmax (fastText's ``loss='hs'``) has no row per label at all (see
  :mod:`unembed.sources.fasttext_model`).

The ``morphologizer`` (labels: feature bundles such as ``POS=NOUN|Number=Sing``) and the
``senter`` (labels ``I``, ``S``: inside a sentence, sentence start) have the tagger's
architecture and are read the same way (row i is ``pipe.labels[i]``, the one spaCy writes for
an argmax at i).

Supported: spaCy 3.8 (thinc 8.3), ``spacy.Tagger.v1`` and ``v2`` (``tagger``,
``morphologizer``, ``senter``), ``parser`` and ``ner`` with
``spacy.TransitionBasedParser.v1`` / ``v2`` (greedy, ``use_upper = true``, ``maxout_pieces``
>= 2: spaCy's defaults for CPU pipelines).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError
from unembed.head import Head, logits_to_log_probs
from unembed.sources._repr import model_html, model_repr
from unembed.sources.spacy_components import (
    TRANSITION,
    factory,
    is_spacy_dir,
    is_spacy_language,
    pick_component,
)

if TYPE_CHECKING:
    from unembed.model import LoadedModel

__all__ = ["SpacyComponent", "SpacyTagger", "SpacyTexts", "SpacyTransition", "is_spacy_dir",
           "is_spacy_language", "load_spacy"]

class _Pipe:
    """What every component read from a pipeline shares: running the components before it,
    and the audit's texts."""

    nlp: Any
    component: str

    def forward(self, inputs: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        raise NotImplementedError

    def docs(self, inputs: Any) -> list[Any]:
        """Texts (a string or a list of strings) or Docs, run through the components before
        this one."""
        from spacy.tokens import Doc

        if isinstance(inputs, (str, Doc)):
            inputs = [inputs]
        if not isinstance(inputs, (list, tuple)) or not all(isinstance(x, (str, Doc))
                                                            for x in inputs):
            raise UnembedError("must be text, a list of texts or spaCy Docs.",
                               argument="inputs", function="a spaCy component")
        docs = [x if isinstance(x, Doc) else self.nlp.make_doc(x) for x in inputs]
        for name, proc in self.nlp.pipeline:
            if name == self.component:
                break
            docs = list(proc.pipe(docs))
        return docs

    def hidden_states(self, inputs: Any) -> NDArray[np.float64]:
        """The hidden states (n, d), float64: one row per prediction."""
        return self.forward(inputs)[0]

    def random_inputs(self, n: int, length: int, *, seed: int = 0) -> Any:
        """Refused: a pipeline takes texts, and random texts would say nothing."""
        raise UnembedError(f"a spaCy {self.component} takes texts and cannot draw random inputs; "
                           f"pass the inputs.")

    def model_logits(self, inputs: Any) -> NDArray[np.float64]:
        """The component's own scores (n, V), float64."""
        return self.forward(inputs)[1]

    def open_text(self, path: str | os.PathLike[str], *, max_inputs: int | None = None
                  ) -> SpacyTexts:
        """Audit data: one text per line (``.txt``) or JSON lines with a "text" field."""
        return SpacyTexts(Path(path), self, max_inputs=max_inputs)


class SpacyTagger(_Pipe):
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
    __repr__ = model_repr
    _repr_html_ = model_html

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
            raise UnembedError(f"{source}: the component {component!r} does not end in a Softmax "
                               f"layer "
                               f"(its model is {model.name[-80:]!r}); cannot read its head "
                               f"exactly.")
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
            raise UnembedError(f"{source}: the component {component!r} has {len(labels)} labels "
                               f"but its "
                               f"output layer has {W.shape[0]} rows.")
        self.dtype = str(W.dtype)
        meta = {"family": f"spacy {factory(nlp, component)}",
                "component": component, "architecture": model.name[-40:],
                "softmax_temperature": temperature,
                "outputs": "probabilities" if self.normalizes else "logits",
                "notes": [f"hidden state: the tok2vec output at each token (d = {W.shape[1]})"],
                "spacy_version": _spacy_version()}
        self.head = Head(W=W, b=b, labels=labels, link="softmax",
                         logit_scale=1.0 / temperature, reparam=False, dtype=self.dtype,
                         meta=meta, source=f"{source} (component {component!r})",
                         strict=strict, labels_from=f"the {component!r} component",
                         reparam_reason="spaCy's tok2vec ends in a residual sum (x + f(x)), not "
                                        "in an affine map that could absorb an invertible A")
        self._verified = False

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

    def layer_logits(self, h: NDArray[np.float64]) -> NDArray[np.float64]:
        """The Softmax layer itself run on hidden states (n, d) (for Softmax v1: the log of
        its probabilities), float64."""
        y = np.asarray(self.out.predict(np.asarray(h, dtype=np.float32)), dtype=np.float64)
        if self.normalizes:
            return np.log(y)
        return y * self.head.logit_scale

    def with_head(self, head: Head) -> SpacyTagger:
        """A copy of the pipeline whose tagger has W = head.W, b = head.b (same shape)."""
        import copy

        if head.W.shape != self.head.W.shape:
            raise UnembedError(f"The new head has shape {head.W.shape}; this tagger's is "
                               f"{self.head.W.shape}.")
        nlp = copy.deepcopy(self.nlp)
        last = nlp.get_pipe(self.component).model.layers[-1]
        out = last.layers[0] if last.name.startswith("with_array") else last
        dt = np.dtype(self.dtype)
        out.set_param("W", np.ascontiguousarray(head.W, dtype=dt))
        out.set_param("b", np.ascontiguousarray(head.bias, dtype=dt))
        return SpacyTagger(nlp, self.component, source=self.source, strict=head.strict)


class SpacyTransition(_Pipe):
    """A spaCy parser's or NER's action layer (see the module docstring): the upper Linear's
    rows for the moves seen in training, and the state vector at its input for every
    transition of the greedy parse.

    Attributes
    ----------
    head : Head
        ``W`` (n_moves, nH), ``b``; labels are the move names.
    kind : str
        "spacy".
    nlp : spacy.Language
    component : str
    moves : tuple of int
        The rows of the upper layer the head holds (the seen moves), in order.
    """

    kind = "spacy"
    __repr__ = model_repr
    _repr_html_ = model_html

    def __init__(self, nlp: Any, component: str, *, source: str, strict: bool = True) -> None:
        self.nlp = nlp
        self.component = component
        self.source = source
        pipe = nlp.get_pipe(component)
        where = f"{source}: component {component!r}"
        model = pipe.model
        if int(pipe.cfg.get("beam_width", 1)) != 1:
            raise UnembedError(f"{where} parses with beam search (beam_width "
                               f"{pipe.cfg.get('beam_width')}): which states are scored depends "
                               f"on the "
                               f"beam, so there is no one hidden state per decision; not read.")
        if model.name != "parser_model" or not model.attrs.get("has_upper", False):
            raise UnembedError(f"{where} has no upper layer (use_upper = false): its action "
                               f"scores are "
                               f"the lower layer's maxout output itself, not a linear layer over a "
                               f"hidden state; not read.")
        lower, upper = model.get_ref("lower"), model.get_ref("upper")
        n_pieces = int(lower.get_dim("nP")) if lower.has_dim("nP") else 1
        if n_pieces < 2:
            raise UnembedError(f"{where} has maxout_pieces = 1: spaCy 3.8's greedy parse feeds "
                               f"the upper "
                               f"layer the summed features as they are, its Python step model "
                               f"(beam "
                               f"search, training) their ReLU, so the hidden state is not one "
                               f"thing; "
                               f"not read.")
        if upper.name != "linear" or not upper.has_param("W"):
            raise UnembedError(f"{where}: the upper layer is {upper.name!r}, not a thinc Linear; "
                               f"cannot "
                               f"read its head exactly.")
        self.upper = upper
        W = np.asarray(upper.get_param("W"))
        b = np.asarray(upper.get_param("b"))
        n_moves = int(pipe.moves.n_moves)
        if W.shape[0] != n_moves:
            raise UnembedError(f"{where} has {n_moves} moves but its upper layer has {W.shape[0]} "
                               f"rows.")
        unseen = sorted(int(i) for i in model.attrs.get("unseen_classes", ()))
        self.moves = tuple(i for i in range(n_moves) if i not in set(unseen))
        names = [str(pipe.moves.get_class_name(i)) for i in range(n_moves)]
        idx = list(self.moves)
        self.dtype = str(W.dtype)
        kind = factory(nlp, component)
        notes = [
            f"hidden state: the state vector of each parser state (the maxout over "
            f"{n_pieces} pieces of the lower layer's features of its "
            f"{int(lower.get_dim('nF'))} context tokens; d = {W.shape[1]}), one per "
            f"transition of the greedy parse",
            "spaCy takes the argmax of W h + b over the moves valid in each state: translation "
            "and bias shift keep it (and every softmax over the valid moves); probabilities "
            "here are the softmax over all moves read (the one spaCy's training loss uses), "
            "and 'argmaxable' / 'top two' answers are over all moves, not over each state's "
            "valid moves",
        ]
        if unseen:
            notes.append(f"{len(unseen)} moves never seen in training are left out (spaCy "
                         f"gives them the batch's minimum score, not W h + b): "
                         f"{', '.join(names[i] for i in unseen[:10])}")
        meta = {"family": f"spacy {kind} action layer", "component": component,
                "architecture": "TransitionModel (tok2vec, lower, upper)",
                "unseen_moves": [names[i] for i in unseen],
                "notes": notes, "spacy_version": _spacy_version()}
        self.head = Head(W=W[idx], b=b[idx], labels=tuple(names[i] for i in idx),
                         link="softmax", reparam=False, dtype=self.dtype, meta=meta,
                         source=f"{source} (component {component!r})",
                         strict=strict, masked_argmax=True,
                         labels_from=f"the {component!r} component's moves",
                         reparam_reason="the state vector is a maxout of summed features, not "
                                        "the output of an affine map that could absorb an "
                                        "invertible A")
        self._verified = False

    def walk(self, docs: list[Any]) -> tuple[NDArray[np.float64], NDArray[np.float64],
                                             NDArray[np.intp], list[Any]]:
        """The greedy parse of ``docs`` with spaCy's step model: (state vectors (n, nH),
        scores (n, n_moves) of every move, the doc index of each row, the final states); rows
        are in document order, each document's in transition order."""
        pipe = self.nlp.get_pipe(self.component)
        batch = pipe.moves.init_batch(docs)
        step = pipe.model.predict(docs)
        alive = [(i, s) for i, s in enumerate(batch) if not s.is_final()]
        hs: list[NDArray[Any]] = []
        zs: list[NDArray[Any]] = []
        owner: list[int] = []
        try:
            while alive:
                states = [s for _, s in alive]
                ids = step.get_token_ids(states)
                vec = np.asarray(step.state2vec.predict(ids))
                scores = np.ascontiguousarray(step.vec2scores.predict(vec), dtype=np.float32)
                scores[:, step._class_mask == 0] = np.nanmin(scores)
                hs.append(vec)
                zs.append(scores)
                owner.extend(i for i, _ in alive)
                pipe.transition_states(states, scores)
                alive = [(i, s) for i, s in alive if not s.is_final()]
        finally:
            step.clear_memory()
        nh, nm = self.upper.get_param("W").shape[1], self.upper.get_param("W").shape[0]
        h = np.concatenate(hs).astype(np.float64) if hs else np.zeros((0, nh))
        z = np.concatenate(zs).astype(np.float64) if zs else np.zeros((0, nm))
        order = np.argsort(np.asarray(owner, dtype=np.intp), kind="stable")
        return h[order], z[order], np.asarray(owner, dtype=np.intp)[order], batch

    def forward(self, inputs: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(state vectors (n, nH), the action layer's scores of the moves read (n, V)),
        float64, one row per transition of the greedy parse of ``inputs`` (texts or Docs)."""
        docs = self.docs(inputs)
        h, z, _, batch = self.walk(docs)
        z = z[:, list(self.moves)]
        if not self._verified and len(h):
            self._check(docs, h, z, batch)
        return h, z

    def n_predictions(self, text: str) -> int:
        """How many transitions the greedy parse of ``text`` takes."""
        return int(self.walk(self.docs([text]))[0].shape[0])

    def _check(self, docs: list[Any], h: NDArray[np.float64], z: NDArray[np.float64],
               batch: list[Any]) -> None:
        from unembed.sources._torch import check_logits_equal

        check_logits_equal(self.source, "the action layer's scores (of its state vectors)",
                           self.head.logits(h), z, self.dtype)
        # the parse these scores lead to is the one spaCy's own (C) greedy loop produces
        pipe = self.nlp.get_pipe(self.component)
        mine = [d.copy() for d in docs]
        theirs = [d.copy() for d in docs]
        pipe.set_annotations(mine, batch)
        pipe.set_annotations(theirs, pipe.predict([d.copy() for d in docs]))
        attrs = ["HEAD", "DEP", "ENT_IOB", "ENT_TYPE"]
        for a, t in zip(mine, theirs, strict=True):
            if not np.array_equal(a.to_array(attrs), t.to_array(attrs)):
                raise UnembedError(f"{self.source}: the parse from the scores read here differs "
                                   f"from "
                                   f"the one spaCy's component {self.component!r} produces (on "
                                   f"{a.text[:60]!r}); refused rather than read wrongly.")
        self._verified = True

    def layer_logits(self, h: NDArray[np.float64]) -> NDArray[np.float64]:
        """The upper layer itself run on state vectors (n, nH): its scores of the moves read."""
        y = np.asarray(self.upper.predict(np.asarray(h, dtype=np.float32)), dtype=np.float64)
        return y[:, list(self.moves)]

    def with_head(self, head: Head) -> SpacyTransition:
        """A copy of the pipeline whose upper layer has the rows of the moves read replaced by
        ``head.W``, ``head.b`` (same shape; the unseen moves' rows unchanged)."""
        import copy

        if head.W.shape != self.head.W.shape:
            raise UnembedError(f"The new head has shape {head.W.shape}; this action layer's is "
                               f"{self.head.W.shape}.")
        nlp = copy.deepcopy(self.nlp)
        upper = nlp.get_pipe(self.component).model.get_ref("upper")
        dt = np.dtype(self.dtype)
        W = np.array(upper.get_param("W"), dtype=dt)
        b = np.array(upper.get_param("b"), dtype=dt)
        W[list(self.moves)] = head.W
        b[list(self.moves)] = head.bias
        upper.set_param("W", np.ascontiguousarray(W))
        upper.set_param("b", np.ascontiguousarray(b))
        return SpacyTransition(nlp, self.component, source=self.source, strict=head.strict)


#: What :func:`load_spacy` returns.
SpacyComponent = SpacyTagger | SpacyTransition


def _spacy_version() -> str:
    import spacy

    return str(spacy.__version__)


def _decoded(path: Path, fh: Any) -> Iterator[str]:
    """The lines of a text file opened as UTF-8; a byte that is not UTF-8 is an error
    naming the file and the line it is on."""
    n = 0
    try:
        for line in fh:
            n += 1
            yield line
    except UnicodeDecodeError as e:
        raise UnembedError(f"not UTF-8 text (byte 0x{e.object[e.start]:02x} on or after "
                               f"line {n + 1}).", path=path) from None


class SpacyTexts:
    """Texts for a spaCy tagger's audit: one per line (blank lines skipped) or JSON lines with
    a "text" field; every token of a text is one prediction."""

    def __init__(self, path: Path, model: _Pipe, *, max_inputs: int | None = None) -> None:
        if not path.is_file():
            raise UnembedError("no such data file.", path=path)
        if path.stat().st_size == 0:
            raise UnembedError("an empty data file; it holds no text.", path=path)
        self.path = path
        self.model = model
        self.max_inputs = max_inputs

    def texts(self) -> Iterator[str]:
        jsonl = self.path.suffix.lower() in (".jsonl", ".ndjson")
        n = 0
        with open(self.path, encoding="utf-8") as fh:
            for lineno, line in enumerate(_decoded(self.path, fh), 1):
                if not line.strip():
                    continue
                if len(line) > self.model.nlp.max_length:
                    raise UnembedError(f"line {lineno} has {len(line)} characters, "
                                                f"more than spaCy's max_length "
                                                f"({self.model.nlp.max_length}).", path=self.path)
                if self.max_inputs is not None and n >= self.max_inputs:
                    return
                if jsonl:
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise UnembedError(f"line {lineno} is not valid JSON ({e}).",
                                           path=self.path) \
                            from None
                    if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
                        raise UnembedError(f"line {lineno} has no string field "
                                           f"'text'.", path=self.path)
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

    def describe(self, indices: Sequence[int], model: LoadedModel) -> dict[int, str]:
        """For prediction i: the text it is in, with the token in brackets."""
        want = sorted({int(i) for i in indices})
        out: dict[int, str] = {}
        seen = 0
        if isinstance(self.model, SpacyTransition):
            for ti, text in enumerate(self.texts()):
                n = self.model.n_predictions(text)
                for i in want:
                    if seen <= i < seen + n:
                        out[i] = f"text {ti}, transition {i - seen}: {text[:160]!r}"
                seen += n
                if len(out) == len(want):
                    break
            return out
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
               ) -> SpacyComponent:
    """Read a tagger, parser or NER of a spaCy pipeline: a ``Language`` object or a saved
    pipeline directory (``nlp.to_disk``; read with ``spacy.load``, no pickle). ``component``
    names it (default: the only tagger; without a tagger, the only parser or NER)."""
    notes: list[str] = []
    if isinstance(source, (str, os.PathLike)):
        from unembed.sources.spacy_checks import load_pipeline

        nlp, notes = load_pipeline(Path(source))
        where = str(source)
    else:
        nlp, where = source, f"spaCy pipeline {source.meta.get('name', '')!s}".strip()
    name = pick_component(nlp, component, where)
    out: SpacyComponent
    if factory(nlp, name) in TRANSITION:
        out = SpacyTransition(nlp, name, source=where, strict=strict)
    else:
        out = SpacyTagger(nlp, name, source=where, strict=strict)
    probe = out.forward(["the cat sat on the mat"])  # verify now
    del probe
    if notes:
        out.head = out.head.with_provenance(notes=notes)
    return out
