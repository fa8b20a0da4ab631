"""spaCy pipelines: a tiny tagger trained in-process, read exactly; parser/NER refused with
the reason; the CLI's inspect, counterexample and audit on the saved pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spacy_tagger import TEXTS, train_tagger
from unembed import UnembedError, compare_logits, load, translation_for_cosine
from unembed.cli import main


@pytest.fixture(scope="module")
def nlp():
    return train_tagger()


@pytest.fixture(scope="module")
def saved(nlp, tmp_path_factory):
    path = tmp_path_factory.mktemp("spacy") / "pipeline"
    nlp.to_disk(path)
    return path


def _independent(nlp, texts):
    """The tagger's scores and its tok2vec output, recomputed by hand from the thinc layers'
    parameters: z = h W^T + b per token, and the tags spaCy itself assigns."""
    tagger = nlp.get_pipe("tagger")
    softmax = tagger.model.layers[-1].layers[0]
    W, b = softmax.get_param("W").astype(np.float64), softmax.get_param("b").astype(np.float64)
    docs = [nlp.make_doc(t) for t in texts]
    h = np.concatenate([np.asarray(a, dtype=np.float64)
                        for a in tagger.model.layers[0].predict(docs)])
    tags = [tok.tag_ for doc in nlp.pipe(texts) for tok in doc]
    return h, h @ W.T + b, tags


def test_tagger_head_is_exact(nlp):
    m = load(nlp)
    assert m.kind == "spacy" and m.head.labels == ("ADJ", "ADP", "ADV", "DET", "NOUN", "VERB")
    h, z = m.forward(TEXTS)
    h_ref, z_ref, tags = _independent(nlp, TEXTS)
    assert np.abs(h - h_ref).max() < 1e-6
    assert np.abs(z - z_ref).max() < 1e-5
    assert np.abs(m.head.logits(h) - z).max() < 1e-5
    # the head's argmax is the tag spaCy writes
    assert [m.head.labels[i] for i in m.head.logits(h).argmax(1)] == tags


def test_tagger_v1_returns_probabilities_and_is_read_too():
    nlp = train_tagger(v1=True)
    m = load(nlp)
    assert m.head.meta["outputs"] == "probabilities"
    h, z = m.forward(TEXTS)
    h_ref, z_ref, tags = _independent(nlp, TEXTS)
    assert np.abs(h - h_ref).max() < 1e-6
    p_ref = np.exp(z_ref - z_ref.max(1, keepdims=True))
    p_ref /= p_ref.sum(1, keepdims=True)
    assert np.abs(m.head.probs(h) - p_ref).max() < 1e-6
    assert np.abs(np.exp(z) - p_ref).max() < 1e-5  # the layer's own output, probabilities
    assert [m.head.labels[i] for i in z.argmax(1)] == tags


def test_shared_tok2vec_listener(tmp_path):
    nlp = train_tagger(shared_tok2vec=True)
    m = load(nlp)
    h, z = m.forward(TEXTS)
    docs = list(nlp.pipe(TEXTS))
    tensor = np.concatenate([np.asarray(d.tensor, dtype=np.float64) for d in docs])
    assert np.abs(h - tensor).max() < 1e-6  # the hidden state is the shared doc.tensor
    assert [m.head.labels[i] for i in z.argmax(1)] == [t.tag_ for d in docs for t in d]


def test_a_tagger_is_preferred_and_ner_is_read_when_named():
    nlp = train_tagger(with_ner=True)
    assert load(nlp).head.meta["component"] == "tagger"
    # (test_sources_spacy_transition.py checks what is read from a parser and an NER)
    # a briefly trained NER may keep actions it never took at their shared initial row; strict
    # loading refuses those identical rows (naming them), strict=False reads the head anyway
    ner = load(nlp, component="ner", strict=False)
    assert ner.head.masked_argmax and "U-ANIMAL" in ner.head.labels


def test_pipeline_without_tagger_is_refused():
    import spacy

    with pytest.raises(UnembedError, match="no component unembed reads.*sentencizer"):
        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer")
        load(nlp)


def test_counterexample_keeps_every_tag(nlp, tmp_path):
    from unembed.export import export_model

    m = load(nlp)
    res = translation_for_cosine(m.head, "NOUN", "VERB", 0.95)
    ex = export_model(m, res.head, tmp_path / "out", inputs=TEXTS)
    back = load(str(tmp_path / "out"))
    i, j = back.head.index("NOUN"), back.head.index("VERB")
    W = back.head.W
    assert abs(W[i] @ W[j] / np.linalg.norm(W[i]) / np.linalg.norm(W[j]) - 0.95) < 1e-5
    assert ex.equivalence.equivalent
    assert compare_logits(m.model_logits(TEXTS), back.model_logits(TEXTS), "softmax",
                          dtype="float32").equivalent
    assert [t.tag_ for d in back.nlp.pipe(TEXTS) for t in d] == \
        [t.tag_ for d in nlp.pipe(TEXTS) for t in d]


def test_cli_inspect_counterexample_audit(saved, tmp_path, capsys):
    assert main(["inspect", "--model", str(saved), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert "V=6" in info["head"] and info["rows"] == "stored"
    data = tmp_path / "texts.txt"
    data.write_text("\n".join(TEXTS * 3) + "\n", encoding="utf-8")
    rc = main(["counterexample", "--model", str(saved), "--pair", "DET", "NOUN",
               "--target", "-0.5", "--out", str(tmp_path / "cx"), "--data", str(data)])
    assert rc == 0
    capsys.readouterr()
    rc = main(["audit", "--model", str(saved), "--data", str(data), "--out",
               str(tmp_path / "audit"), "--no-progress", "--json"])
    assert rc == 0
    rec = json.loads(capsys.readouterr().out)
    assert (tmp_path / "audit" / "report.html").is_file() and rec["claims"]
    assert main(["inspect", "--model", str(saved), "--component", "parser"]) == 2
    assert "no component 'parser'" in capsys.readouterr().err


def test_an_explicit_accelerator_is_refused_not_ignored(nlp, saved):
    """spaCy runs its own forward passes: --device cuda would silently stay on the CPU."""
    import unembed
    from unembed import UnembedError

    for source in (nlp, saved):
        with pytest.raises(UnembedError, match="--device cuda applies to torch models"):
            unembed.load(source, device="cuda")
        assert unembed.load(source, device="cpu").head.W.shape[0] >= 2
