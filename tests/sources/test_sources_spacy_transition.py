"""spaCy's transition-based parser and NER: the upper layer of the action model read exactly,
the state vector at its input for every transition of the greedy parse, checked against a
numpy re-implementation of spaCy's state features and against the annotations spaCy writes.

A tiny pipeline (parser + ner, own tok2vec each) is trained in-process on five sentences.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from unembed import UnembedError, load, translation_for_cosine
from unembed.cli import main

TRAIN = [
    ("They trade mortgage-backed securities.", [1, 1, 4, 4, 5, 1, 1],
     ["nsubj", "ROOT", "compound", "punct", "nmod", "dobj", "punct"], [(0, 4, "ORG")]),
    ("I like London and Berlin.", [1, 1, 1, 2, 2, 1],
     ["nsubj", "ROOT", "dobj", "cc", "conj", "punct"], [(7, 13, "GPE"), (18, 24, "GPE")]),
    ("You see this , man .", [1, 1, 1, 1, 1, 1],
     ["nsubj", "ROOT", "dobj", "punct", "dep", "punct"], []),
    ("Well , they trade .", [3, 3, 3, 3, 3], ["dep", "punct", "nsubj", "ROOT", "punct"], []),
    ("Acme Big Corp likes New York City .", [2, 2, 3, 3, 6, 6, 3, 3],
     ["compound", "compound", "nsubj", "ROOT", "compound", "compound", "dobj", "punct"],
     [(0, 13, "ORG"), (20, 33, "GPE")]),
]
TEXTS = ["They like Berlin and London.", "I trade securities .", "Acme Corp likes York ."]


def train_pipeline():
    import spacy
    from spacy.training import Example

    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("parser", config={"min_action_freq": 1})
    nlp.add_pipe("ner")
    exs = [Example.from_dict(nlp.make_doc(t), {"heads": h, "deps": d, "entities": e})
           for t, h, d, e in TRAIN]
    opt = nlp.initialize(lambda: exs)
    for _ in range(20):
        nlp.update(exs, sgd=opt)
    return nlp


@pytest.fixture(scope="module")
def nlp():
    return train_pipeline()


@pytest.fixture(scope="module")
def saved(nlp, tmp_path_factory):
    path = tmp_path_factory.mktemp("spacy_tb") / "pipeline"
    nlp.to_disk(path)
    return path


def _by_hand(nlp, name, texts):
    """Every state vector and score of the greedy parse, recomputed in numpy from the thinc
    parameters (PrecomputableAffine W (nF, nO, nP, nI), b (nO, nP), pad (1, nF, nO, nP);
    upper W, b): h = maxout_p(sum_f F_f(token_f) + b), z = W_up h + b_up. spaCy is used only
    for the transition system: which tokens a state looks at, and which moves are valid."""
    pipe = nlp.get_pipe(name)
    lower, upper = pipe.model.get_ref("lower"), pipe.model.get_ref("upper")
    Wl = lower.get_param("W").astype(np.float64)
    bl = lower.get_param("b").astype(np.float64)
    pad = lower.get_param("pad").astype(np.float64)[0]
    Wu, bu = upper.get_param("W").astype(np.float64), upper.get_param("b").astype(np.float64)
    docs = [nlp.make_doc(t) for t in texts]
    tokvecs = np.asarray(pipe.model.get_ref("tok2vec").predict(docs), dtype=np.float64)
    batch = pipe.moves.init_batch(docs)
    step = pipe.model.predict(docs)
    alive = [(i, s) for i, s in enumerate(batch) if not s.is_final()]
    rows: list[tuple[int, np.ndarray, np.ndarray]] = []
    while alive:
        states = [s for _, s in alive]
        ids = step.get_token_ids(states)
        pre = np.empty((len(states), *bl.shape))
        for k, row in enumerate(ids):
            feats = [pad[f] if t < 0 else np.einsum("opi,i->op", Wl[f], tokvecs[t])
                     for f, t in enumerate(row)]
            pre[k] = np.sum(feats, axis=0) + bl
        h = pre.max(axis=2)
        z = h @ Wu.T + bu
        rows.extend((i, h[k], z[k]) for k, (i, _) in enumerate(alive))
        decide = z.copy()  # spaCy gives moves unseen in training the batch's minimum score
        decide[:, sorted(pipe.model.attrs["unseen_classes"])] = z.min()
        pipe.transition_states(states, np.ascontiguousarray(decide, dtype=np.float32))
        alive = [(i, s) for i, s in alive if not s.is_final()]
    rows.sort(key=lambda r: r[0])  # document order (stable: transition order within)
    annotated = [d.copy() for d in docs]
    pipe.set_annotations(annotated, batch)
    return (np.array([r[1] for r in rows]), np.array([r[2] for r in rows]), annotated)


@pytest.mark.parametrize("name", ["parser", "ner"])
def test_action_layer_and_state_vectors_are_exact(nlp, name):
    m = load(nlp, component=name)
    pipe = nlp.get_pipe(name)
    assert m.kind == "spacy" and m.head.labels == tuple(
        pipe.moves.get_class_name(i) for i in range(pipe.moves.n_moves))
    h, z = m.forward(TEXTS)
    h_ref, z_ref, annotated = _by_hand(nlp, name, TEXTS)
    assert h.shape == h_ref.shape and np.abs(h - h_ref).max() < 1e-4
    assert np.abs(z - z_ref).max() < 1e-4
    assert np.abs(m.head.logits(h) - z_ref).max() < 1e-4
    # the probabilities reported: softmax over all moves, by hand
    p = np.exp(z_ref - z_ref.max(1, keepdims=True))
    assert np.abs(m.head.probs(h) - p / p.sum(1, keepdims=True)).max() < 1e-5
    # the by-hand scores, fed to spaCy's masked argmax, give the annotations spaCy writes
    attrs = ["HEAD", "DEP"] if name == "parser" else ["ENT_IOB", "ENT_TYPE"]
    for mine, theirs in zip(annotated, nlp.pipe(TEXTS), strict=True):
        assert np.array_equal(mine.to_array(attrs), theirs.to_array(attrs))
    assert any("valid in each state" in n for n in m.head.meta["notes"])
    assert m.head.reparam is False and "maxout" in (m.head.reparam_reason or "")


def test_translation_keeps_every_masked_decision(nlp, tmp_path):
    """The symmetry claim under masking: a translation of every row adds one number to every
    move's score in every state, so the argmax over each state's valid moves, and so the parse,
    is unchanged, while the cosine moves to the target."""
    import spacy

    from unembed.export import export_model

    m = load(nlp, component="parser")
    res = translation_for_cosine(m.head, "L-nsubj", "R-dobj", -0.9)
    ex = export_model(m, res.head, tmp_path / "out", inputs=TEXTS)
    assert ex.equivalence.equivalent
    back = spacy.load(tmp_path / "out")
    up = back.get_pipe("parser").model.get_ref("upper").get_param("W").astype(np.float64)
    i, j = m.head.index("L-nsubj"), m.head.index("R-dobj")
    assert abs(up[i] @ up[j] / np.linalg.norm(up[i]) / np.linalg.norm(up[j]) + 0.9) < 1e-5
    attrs = ["HEAD", "DEP"]
    for a, b in zip(back.pipe(TEXTS), nlp.pipe(TEXTS), strict=True):
        assert np.array_equal(a.to_array(attrs), b.to_array(attrs))


@pytest.mark.parametrize(("factory", "config", "message"), [
    ("beam_parser", {}, "beam search"),
    ("parser", {"model": {"@architectures": "spacy.TransitionBasedParser.v2",
                          "state_type": "parser", "extra_state_tokens": False,
                          "hidden_width": 16, "maxout_pieces": 2, "use_upper": False}},
     "no upper layer"),
    ("ner", {"model": {"@architectures": "spacy.TransitionBasedParser.v2",
                       "state_type": "ner", "extra_state_tokens": False, "hidden_width": 16,
                       "maxout_pieces": 1, "use_upper": True}},
     "maxout_pieces = 1"),
])
def test_what_is_not_read_is_refused_with_the_reason(factory, config, message):
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe(factory, name="tb", config=config)
    with pytest.raises(UnembedError, match=message):
        load(nlp, component="tb")


def test_cli_inspect_counterexample_audit(saved, tmp_path, capsys):
    assert main(["inspect", "--model", str(saved), "--component", "ner", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert "V=10" in info["head"]
    data = tmp_path / "texts.txt"
    data.write_text("\n".join(TEXTS * 3) + "\n", encoding="utf-8")
    assert main(["counterexample", "--model", str(saved), "--component", "parser", "--pair",
                 "S", "D", "--target", "0.5", "--out", str(tmp_path / "cx"), "--data",
                 str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["equivalence"]["equivalent"]
    assert main(["audit", "--model", str(saved), "--component", "parser", "--data", str(data),
                 "--out", str(tmp_path / "audit"), "--no-progress", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    audit = json.loads((tmp_path / "audit" / "audit.json").read_text())
    h, _, _ = _by_hand(__import__("spacy").load(saved), "parser", TEXTS * 3)
    assert audit["data"]["n_predictions"] == len(h)  # one prediction per transition
    assert rec["report"].endswith("report.html")
    assert main(["inspect", "--model", str(saved)]) == 2
    assert "several components unembed reads (parser, ner)" in capsys.readouterr().err


def test_feasibility_answers_say_they_are_over_all_moves(saved, capsys):
    """argmaxable / feasible on a masked-argmax component answer over all moves and say so."""
    assert main(["argmaxable", "--model", str(saved), "--component", "ner", "--json",
                 "--no-progress"]) == 0
    notes = json.loads(capsys.readouterr().out)["notes"]
    assert any("moves valid in each state" in n for n in notes)
    assert main(["feasible", "--model", str(saved), "--component", "ner", "--top-two",
                 "B-ORG", "O"]) == 0
    assert "these answers are over all moves" in capsys.readouterr().out


def test_moves_added_after_training_are_left_out_and_named():
    """A label added after training gives moves spaCy never scores with W h + b (they get the
    batch minimum): they are not rows of the head, and the parse is still spaCy's."""
    nlp = train_pipeline()
    ner = nlp.get_pipe("ner")
    n_before = ner.moves.n_moves
    ner.add_label("PRODUCT")
    unseen = sorted(ner.model.attrs["unseen_classes"])
    assert unseen and ner.moves.n_moves > n_before
    m = load(nlp, component="ner")
    names = [ner.moves.get_class_name(i) for i in unseen]
    assert m.head.meta["unseen_moves"] == names
    assert not set(names) & set(m.head.labels) and m.head.n_labels == ner.moves.n_moves - len(
        unseen)
    h, z = m.forward(TEXTS)
    h_ref, z_ref, _ = _by_hand(nlp, "ner", TEXTS)
    keep = [i for i in range(ner.moves.n_moves) if i not in unseen]
    assert np.abs(h - h_ref).max() < 1e-4 and np.abs(z - z_ref[:, keep]).max() < 1e-4


def test_cli_neighbours_of_a_move(saved, capsys):
    """neighbours on the parser's action layer: the moves whose centred rows are closest,
    recomputed from the upper layer's parameters read with spacy.load."""
    import spacy

    assert main(["neighbours", "--model", str(saved), "--component", "parser", "L-nsubj",
                 "-k", "3", "--view", "centered", "--json"]) == 0
    (got,) = json.loads(capsys.readouterr().out)["neighbours"].values()
    pipe = spacy.load(saved).get_pipe("parser")
    W = pipe.model.get_ref("upper").get_param("W").astype(np.float64)
    names = [pipe.moves.get_class_name(i) for i in range(pipe.moves.n_moves)]
    C = W - W.mean(axis=0)
    U = C / np.linalg.norm(C, axis=1, keepdims=True)
    i = names.index("L-nsubj")
    cos = U @ U[i]
    cos[i] = -np.inf
    top = np.argsort(-cos)[:3]
    assert [n["label"] for n in got] == [names[j] for j in top]
    assert np.allclose([n["cosine"] for n in got], cos[top], atol=1e-9)


# ------------------------------------------------------------ morphologizer and senter
MORPH = [
    ("the cat sees dogs", ["POS=DET", "Number=Sing|POS=NOUN", "Number=Sing|POS=VERB",
                           "Number=Plur|POS=NOUN"], [1, 0, 0, 0]),
    ("dogs see a cat . the end", ["Number=Plur|POS=NOUN", "Number=Plur|POS=VERB", "POS=DET",
                                  "Number=Sing|POS=NOUN", "POS=PUNCT", "POS=DET",
                                  "Number=Sing|POS=NOUN"], [1, 0, 0, 0, 0, 1, 0]),
]


@pytest.fixture(scope="module")
def morph_nlp():
    import spacy
    from spacy.training import Example

    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("morphologizer")
    nlp.add_pipe("senter")
    exs = []
    for text, morphs, starts in MORPH:
        doc = nlp.make_doc(text)
        pos = [dict(f.split("=") for f in m.split("|"))["POS"] for m in morphs]
        feats = ["|".join(f for f in m.split("|") if not f.startswith("POS=")) for m in morphs]
        exs.append(Example.from_dict(doc, {"pos": pos, "morphs": feats,
                                           "sent_starts": starts}))
    opt = nlp.initialize(lambda: exs)
    for _ in range(15):
        nlp.update(exs, sgd=opt)
    return nlp


def test_morphologizer_rows_are_feature_bundles(morph_nlp):
    texts = ["the dogs see a cat", "a cat sees the dog ."]
    m = load(morph_nlp, component="morphologizer")
    pipe = morph_nlp.get_pipe("morphologizer")
    assert m.head.labels == pipe.labels and m.head.meta["family"] == "spacy morphologizer"
    h, z = m.forward(texts)
    # independent: the Softmax layer's parameters by hand, and what spaCy writes per token
    soft = pipe.model.layers[-1].layers[0]
    W, b = soft.get_param("W").astype(np.float64), soft.get_param("b").astype(np.float64)
    assert np.abs(z - (h @ W.T + b)).max() < 1e-4
    for i, tok in enumerate(t for d in morph_nlp.pipe(texts) for t in d):
        feats = dict(f.split("=") for f in m.head.labels[int(z[i].argmax())].split("|"))
        assert feats == {**tok.morph.to_dict(), "POS": tok.pos_}


def test_senter_rows_are_inside_and_start(morph_nlp):
    texts = ["the cat sees dogs . the end", "dogs see a cat"]
    m = load(morph_nlp, component="senter")
    assert m.head.labels == ("I", "S")
    _, z = m.forward(texts)
    guess = iter(m.head.labels[int(k)] for k in z.argmax(1))
    for doc in morph_nlp.pipe(texts):
        for j, tok in enumerate(doc):
            label = next(guess)
            if j > 0:  # a doc's first token starts a sentence whatever the scores
                assert (label == "S") == bool(tok.is_sent_start)
    # the default component is the only tagger-like one when there is no tagger: refused here
    with pytest.raises(UnembedError, match="several components unembed reads"):
        load(morph_nlp)


def test_parser_listening_to_a_shared_tok2vec():
    """en_core_web_sm's layout: the parser reads a shared tok2vec component's output; reading
    it runs that component first (the first-use check compares the parse with spaCy's)."""
    import spacy
    from spacy.training import Example

    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec")
    nlp.add_pipe("parser", config={"min_action_freq": 1, "model": {
        "@architectures": "spacy.TransitionBasedParser.v2", "state_type": "parser",
        "extra_state_tokens": False, "hidden_width": 32, "maxout_pieces": 2, "use_upper": True,
        "tok2vec": {"@architectures": "spacy.Tok2VecListener.v1", "width": 96,
                    "upstream": "*"}}})
    exs = [Example.from_dict(nlp.make_doc(t), {"heads": h, "deps": d})
           for t, h, d, _ in TRAIN]
    opt = nlp.initialize(lambda: exs)
    for _ in range(20):
        nlp.update(exs, sgd=opt)
    m = load(nlp)  # the only component read
    h, z = m.forward(TEXTS)
    upper = nlp.get_pipe("parser").model.get_ref("upper")
    W, b = upper.get_param("W").astype(np.float64), upper.get_param("b").astype(np.float64)
    assert h.shape[1] == 32 and np.abs(z - (h @ W.T + b)).max() < 1e-4
    assert m._verified
