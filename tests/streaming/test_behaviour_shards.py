"""The streaming pass in shards, without Ray: the label set chosen as a single pass chooses it,
shards merged in any order equal one pass, and data whose inputs' prediction counts are not
known is refused for shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unembed import UnembedError
from unembed.behaviour import LabelSelection, behaviour_of, collect, run_shard, select_labels
from unembed.data import ArrayInputs, open_data
from unembed.sources import load

TEXT = "the cat sat on the mat and the dog sat on the cat. a dog ran to the park.\n" * 12


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 0, 1)])
def test_three_shards_merge_to_one_pass(tiny_gpt2_dir: Path, tmp_path: Path,
                                        order: tuple[int, ...]) -> None:
    data = tmp_path / "t.txt"
    data.write_text(TEXT)
    model = load(tiny_gpt2_dir)
    kw = {"top_k": 3, "batch_size": 2, "keep_hidden": 30}
    one = collect(model, open_data(data, model, window=6), top_n=8,
                  selection_predictions=30, progress=False, **kw)
    sel = select_labels(model, open_data(data, model, window=6),
                        LabelSelection(top_n=8, predictions=30), top_k=3, batch_size=2)
    assert sel.head_batches == 3  # 12 predictions a batch: 3 batches reach 30
    parts = [run_shard(model, open_data(data, model, window=6), sel, shard=s, n_shards=3, **kw)
             for s in order]
    many = behaviour_of(model.head, parts, sel, top_k=3, keep_hidden=30)
    assert many.selection == one.selection and many.n_predictions == one.n_predictions
    np.testing.assert_array_equal(many.idx, one.idx)
    np.testing.assert_array_equal(many.pairs.best_at, one.pairs.best_at)
    np.testing.assert_array_equal(many.pairs.both_top, one.pairs.both_top)
    np.testing.assert_array_equal(many.tally.argmax_count, one.tally.argmax_count)
    np.testing.assert_array_equal(many.hidden, one.hidden)
    for m in one.matrices:
        np.testing.assert_allclose(many.matrices[m], one.matrices[m], rtol=1e-12, atol=1e-12)
    # the logit view's hidden-state moments: every prediction once, as the model's own states
    assert one.moments is not None and many.moments is not None
    assert many.moments.n == one.moments.n == one.n_predictions
    h = np.concatenate([model.hidden_states(b) for b in
                        open_data(data, model, window=6).batches(2)])
    np.testing.assert_allclose(one.moments.covariance(), np.cov(h.T, ddof=0), atol=1e-10)
    np.testing.assert_allclose(many.moments.covariance(), one.moments.covariance(), atol=1e-10)


def test_shards_refuse_rows_of_token_ids(tiny_gpt2_dir: Path) -> None:
    model = load(tiny_gpt2_dir)
    ids = np.random.default_rng(0).integers(0, 50, size=(4, 5))
    sel = select_labels(model, ArrayInputs(ids), LabelSelection(top_n=5, predictions=10),
                        batch_size=2)
    with pytest.raises(UnembedError, match="1 prediction\\(s\\) per input, but the model made 10"):
        run_shard(model, ArrayInputs(ids), sel, shard=0, n_shards=2, batch_size=2)
    # one pass counts the predictions it makes: witnesses index positions, not rows
    beh = collect(model, ArrayInputs(ids), top_n=5, batch_size=2, progress=False)
    assert beh.n_predictions == 20 and beh.pairs.best_at.max() < 20
