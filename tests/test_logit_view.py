"""The ``logit`` view: the correlation over the data of two labels' centered logits, checked
against that correlation computed from a real torch model's (n, V) logits, and unchanged by
every change of parameters that keeps the probabilities (applied to the torch model itself)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from unembed.moments import HiddenMoments, logit_cosines, park_distance

V, D = 7, 8


class _Net(nn.Module):
    """x -> Linear -> tanh -> LayerNorm (no gain) -> Linear (= h) -> head Linear with bias.
    Every h - b2 lies in W2 (1-perp): the head has a known null direction."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(5, D)
        self.norm = nn.LayerNorm(D, elementwise_affine=False)
        self.out = nn.Linear(D, D)
        self.head = nn.Linear(D, V)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.out(self.norm(torch.tanh(self.inp(x))))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.hidden(x))
        return out


@pytest.fixture(scope="module")
def net() -> tuple[_Net, torch.Tensor]:
    torch.manual_seed(0)
    m = _Net().double()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(400, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return m, x


def _state(m: _Net, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with torch.no_grad():
        return (m.hidden(x).numpy(), m.head.weight.numpy().copy(), m(x).numpy())


def test_logit_cosine_is_the_correlation_of_centered_logits(net) -> None:
    m, x = net
    H, W, z = _state(m, x)
    lc = z - z.mean(axis=1, keepdims=True)  # the model's own logits, centered per input
    want = np.corrcoef(lc.T)
    got = logit_cosines(W, HiddenMoments.from_states(H))
    np.testing.assert_allclose(got, want, atol=1e-10)
    sub = [1, 4, 6]
    np.testing.assert_allclose(logit_cosines(W, HiddenMoments.from_states(H), sub),
                               want[np.ix_(sub, sub)], atol=1e-10)


def _changed(m: _Net, change: str) -> _Net:
    """A copy of the model changed by one symmetry; its probabilities stay the same."""
    import copy

    new = copy.deepcopy(m)
    rng = np.random.default_rng(5)
    with torch.no_grad():
        W = new.head.weight.numpy()
        b = new.head.bias.numpy()
        if change == "translation":
            W += rng.normal(size=D) * 3
        elif change == "bias_shift":
            b += 2.5
        elif change == "null_space":
            # v with W2^T v = 1: v . (h - b2) = 1 . n = 0 for every normalised n
            W2, b2 = new.out.weight.numpy(), new.out.bias.numpy()
            v = np.linalg.solve(W2.T, np.ones(D))
            c = rng.normal(size=V) * 4
            W += np.outer(c, v)
            b -= c * (v @ b2)
        elif change == "reparametrisation":
            A = rng.normal(size=(D, D)) + 3 * np.eye(D)
            new.out.weight.copy_(torch.from_numpy(A @ new.out.weight.numpy()))
            new.out.bias.copy_(torch.from_numpy(A @ new.out.bias.numpy()))
            new.head.weight.copy_(torch.from_numpy(W @ np.linalg.inv(A)))
    return new


@pytest.mark.parametrize("change", ["translation", "bias_shift", "null_space",
                                    "reparametrisation"])
def test_logit_view_unchanged_by_every_symmetry(net, change: str) -> None:
    m, x = net
    H, W, z = _state(m, x)
    new = _changed(m, change)
    H2, W2, z2 = _state(new, x)
    lp = torch.log_softmax(torch.from_numpy(z), 1).numpy()
    lp2 = torch.log_softmax(torch.from_numpy(z2), 1).numpy()
    assert np.max(np.abs(lp - lp2)) < 1e-9  # the same model
    before = logit_cosines(W, HiddenMoments.from_states(H))
    after = logit_cosines(W2, HiddenMoments.from_states(H2))
    np.testing.assert_allclose(after, before, atol=1e-9)
    # the Euclidean views do move under the symmetries that change the rows (the test can fail):
    # the raw cosine under translation, the centered one under the other two
    def cos(w: np.ndarray, center: bool) -> np.ndarray:
        c = w - w.mean(axis=0) if center else w
        c = c / np.linalg.norm(c, axis=1, keepdims=True)
        return c @ c.T

    if change != "bias_shift":
        center = change != "translation"
        assert np.max(np.abs(cos(W2, center) - cos(W, center))) > 1e-2


def test_park_distance_against_v_by_v_formula(net) -> None:
    m, x = net
    H, W, _ = _state(m, x)
    mom = HiddenMoments.from_states(H)
    C = W - W.mean(axis=0)
    S = np.cov(H.T, ddof=0)
    K = C @ S @ C.T
    u, s, _ = np.linalg.svd(C)
    r = int(np.sum(s > 1e-10 * s.max()))
    P = u[:, :r] @ u[:, :r].T
    want = np.linalg.norm(K / np.linalg.norm(K) - P / np.linalg.norm(P))
    pd = park_distance(W, mom)
    assert pd.rank == r == V - 1
    assert pd.distance == pytest.approx(want, abs=1e-10)
    # data that meet Park et al.'s assumption, S = Cov(rows)^+ : distance 0
    Sp = np.linalg.pinv(C.T @ C / V)
    L = np.linalg.cholesky(Sp + 1e-12 * np.eye(D))
    Hp = np.random.default_rng(2).standard_normal((20000, D)) @ L.T
    Hp = Hp - Hp.mean(axis=0)
    Hp = Hp @ np.linalg.inv(np.linalg.cholesky(np.cov(Hp.T, ddof=0))).T @ L.T  # exact S
    assert park_distance(W, HiddenMoments.from_states(Hp)).distance < 1e-6
    # unchanged by scaling and by a reparametrisation of the model
    assert park_distance(3 * W, HiddenMoments.from_states(H * 5)).distance == pytest.approx(
        pd.distance, abs=1e-10)
    new = _changed(m, "reparametrisation")
    H2, W2, _ = _state(new, x)
    assert park_distance(W2, HiddenMoments.from_states(H2)).distance == pytest.approx(
        pd.distance, abs=1e-9)
