"""HuggingFace image classifiers: classifier Linear and id2label, raw and folded."""

from __future__ import annotations

import numpy as np
import pytest

from unembed import UnembedError, load


@pytest.mark.parametrize("family,norm", [("vit", "layernorm"), ("convnext", "layernorm"),
                                         ("resnet", None)])
def test_classifier_head_equals_model_logits(tiny_vision_dir, family, norm):
    m = load(tiny_vision_dir(family))
    assert m.kind == "hf_vision" and m.head.labels[:2] == ("class_a", "class_b")
    assert m.head.meta["norm_kind"] == norm and m.head.rows == "stored"
    x = m.random_inputs(3, seed=1)
    z = m.model_logits(x)
    np.testing.assert_allclose(m.head.logits(m.hidden_states(x)), z, atol=1e-5)
    if norm is None:
        with pytest.raises(UnembedError, match="no final norm"):
            load(tiny_vision_dir(family), fold=True)
        return
    f = load(tiny_vision_dir(family), fold=True)
    np.testing.assert_array_equal(f.head.W, m.head.W * m.norm.gain)
    h = f.hidden_states(x)
    np.testing.assert_allclose(h.sum(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(f.head.logits(h), z, atol=1e-5)
