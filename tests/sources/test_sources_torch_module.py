"""Torch modules read through their output Linear."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unembed import UnembedError, load


def _net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 5))


def test_output_linear_given_by_name_or_example_input():
    net = _net()
    x = torch.randn(7, 6)
    with pytest.raises(UnembedError, match="2 Linear layers"):
        load(net)
    with pytest.raises(UnembedError, match="not a Linear"):
        load(net, component="1")
    by_name = load(net, component="2", labels=list("abcde"))
    found = load(net, example_input=x)
    assert by_name.kind == "torch" and by_name.layer_name == found.layer_name == "2"
    assert by_name.head.labels == tuple("abcde") and by_name.head.b is not None
    h, z = by_name.hidden_states(x), by_name.model_logits(x)
    assert h.shape == (7, 8)
    np.testing.assert_allclose(by_name.head.logits(h), z, atol=1e-5)


def test_single_linear_and_sequence_outputs_are_flattened():
    class Tagger(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(20, 4)
            self.out = torch.nn.Linear(4, 3, bias=False)

        def forward(self, ids):
            return self.out(torch.relu(self.emb(ids)) + 0.1)

    torch.manual_seed(1)
    m = load(Tagger(), link="sigmoid")
    ids = np.array([[1, 2, 3], [4, 5, 6]])
    h, z = m.hidden_states(ids), m.model_logits(ids)
    assert h.shape == (6, 4) and z.shape == (6, 3) and m.head.link == "sigmoid"
    np.testing.assert_allclose(m.head.logits(h), z, atol=1e-6)


def test_half_precision_weights_analysed_in_float64():
    net = _net().to(torch.float16)
    m = load(net, component="2")
    assert m.head.dtype == "float16" and m.head.W.dtype == np.float64
    np.testing.assert_array_equal(m.head.W, net[2].weight.detach().double().numpy())
