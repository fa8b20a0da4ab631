"""Hidden states of a spaCy parser (one state vector per transition) against spaCy's own parse.

unembed walks the greedy parse with spaCy's Python step model (``get_token_ids``,
``state2vec``, the upper layer, ``transition_states``) to see the state vector at the upper
layer's input; spaCy parses with its C loop and keeps no state vector. The floor is
``list(nlp.pipe(texts))`` on the same texts in the same process: what a spaCy user runs to parse.

A parser of spaCy's default CPU architecture (tok2vec width 96, hidden_width 64,
maxout_pieces 2, 8 feature tokens) with 40 labels, initialised and its upper layer drawn at
random (timing does not depend on training); 1000 texts of 20 random words.

Run: ``.venv/bin/python benchmarks/bench_spacy_transition.py``.
"""

from __future__ import annotations

import json

import numpy as np
from bench_core import best_of  # benchmarks/ is on sys.path when run as a script


def build(n_labels: int = 40):
    import spacy
    from spacy.training import Example

    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    parser = nlp.add_pipe("parser", config={"min_action_freq": 1})
    labels = [f"dep{i}" for i in range(n_labels)]
    for lab in labels:
        parser.add_label(lab)
    ex = Example.from_dict(nlp.make_doc("a b c"), {"heads": [1, 1, 1],
                                                   "deps": [labels[0], "ROOT", labels[1]]})
    nlp.initialize(lambda: [ex])
    upper = parser.model.get_ref("upper")
    rng = np.random.default_rng(0)
    upper.set_param("W", rng.normal(size=upper.get_param("W").shape).astype("f"))
    upper.set_param("b", rng.normal(size=upper.get_param("b").shape).astype("f"))
    return nlp


def main() -> None:
    from unembed import load

    nlp = build()
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(500)]
    texts = [" ".join(rng.choice(words, 20)) for _ in range(1000)]
    m = load(nlp, component="parser")
    n = m.hidden_states(texts[:10]).shape[0]  # warm-up (and the first-use check)
    batches = [texts[i:i + 100] for i in range(0, len(texts), 100)]
    ours = best_of(lambda: [m.hidden_states(b) for b in batches])
    floor = best_of(lambda: list(nlp.pipe(texts, batch_size=100)))
    n = sum(m.hidden_states(b).shape[0] for b in batches)
    print(json.dumps({"texts": len(texts), "predictions": n, "unembed_seconds": round(ours, 3),
                      "spacy_pipe_seconds": round(floor, 3), "ratio": round(ours / floor, 2),
                      "predictions_per_second": round(n / ours)}))


if __name__ == "__main__":
    main()
