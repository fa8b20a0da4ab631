"""A tiny spaCy tagger trained in-process (seeded, no download), shared by the spaCy source
tests and the command-line tests that read a pipeline."""

from __future__ import annotations

TRAIN = [
    ("the cat sat on the mat", ["DET", "NOUN", "VERB", "ADP", "DET", "NOUN"]),
    ("a dog ran to the park", ["DET", "NOUN", "VERB", "ADP", "DET", "NOUN"]),
    ("dogs bark loudly", ["NOUN", "VERB", "ADV"]),
    ("the quick fox jumps over a lazy dog", ["DET", "ADJ", "NOUN", "VERB", "ADP", "DET",
                                             "ADJ", "NOUN"]),
]
TEXTS = ["the cat ran to a park", "a quick dog sat", "dogs jump over the mat loudly"]


def train_tagger(*, with_ner: bool = False, shared_tok2vec: bool = False,
                 v1: bool = False):
    """spacy.blank("en") + a tagger (own tok2vec, or listening to a shared one), trained for
    a few updates on four sentences (seeded)."""
    import spacy
    from spacy.training import Example

    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    if shared_tok2vec:
        nlp.add_pipe("tok2vec")
        cfg = {"model": {"@architectures": "spacy.Tagger.v2", "nO": None,
                         "tok2vec": {"@architectures": "spacy.Tok2VecListener.v1",
                                     "width": 96, "upstream": "*"}}}
        nlp.add_pipe("tagger", config=cfg)
    elif v1:  # the older architecture: its Softmax returns probabilities
        t2v = {"@architectures": "spacy.HashEmbedCNN.v2", "pretrained_vectors": None,
               "width": 32, "depth": 2, "embed_size": 500, "window_size": 1,
               "maxout_pieces": 2, "subword_features": True}
        nlp.add_pipe("tagger", config={"model": {"@architectures": "spacy.Tagger.v1",
                                                 "nO": None, "tok2vec": t2v}})
    else:
        nlp.add_pipe("tagger")
    if with_ner:
        nlp.add_pipe("ner")
    exs = []
    for text, tags in TRAIN:
        ann = {"tags": tags}
        if with_ner:
            start = text.index(" ") + 1
            ann["entities"] = [(start, text.index(" ", start), "ANIMAL")]
        exs.append(Example.from_dict(nlp.make_doc(text), ann))
    opt = nlp.initialize(lambda: exs)
    for _ in range(4):
        nlp.update(exs, sgd=opt)
    return nlp
