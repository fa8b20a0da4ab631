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
    # the same through the views API and the neighbours, on the heads read from the models
    from unembed.neighbours import neighbours
    from unembed.views import similarity_matrix

    h1, h2 = _head_of(m), _head_of(new)
    d1, d2 = HiddenMoments.from_states(H), HiddenMoments.from_states(H2)
    np.testing.assert_allclose(similarity_matrix(h2, view="logit", data=d2),
                               similarity_matrix(h1, view="logit", data=d1), atol=1e-9)
    n1 = neighbours(h1, None, k=3, view="logit", data=d1)
    n2 = neighbours(h2, None, k=3, view="logit", data=d2)
    for lab in n1:
        assert [x.index for x in n1[lab]] == [x.index for x in n2[lab]]
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


# ------------------------------------------------------------ the logit view everywhere
def _head_of(m: _Net):
    from unembed import Head

    return Head(m.head.weight.detach().numpy().copy(), b=m.head.bias.detach().numpy().copy())


def test_views_cosine_matrix_and_neighbours_under_the_logit_view(net) -> None:
    """cosine, similarity_matrix and neighbours with view="logit" against np.corrcoef of the
    torch model's own centered logits on the same inputs."""
    from unembed.neighbours import neighbours
    from unembed.views import cosine, similarity_matrix

    m, x = net
    H, _, z = _state(m, x)
    want = np.corrcoef((z - z.mean(axis=1, keepdims=True)).T)
    head = _head_of(m)
    mom = HiddenMoments.from_states(H, source="x")
    np.testing.assert_allclose(similarity_matrix(head, view="logit", data=mom), want,
                               atol=1e-10)
    assert cosine(head, 2, 5, "logit", data=mom) == pytest.approx(want[2, 5], abs=1e-10)
    for lab, ns in neighbours(head, None, k=3, view="logit", data=mom).items():
        i = head.index(lab)
        order = sorted((j for j in range(V) if j != i), key=lambda j: (-want[i, j], j))[:3]
        assert [n.index for n in ns] == order
        np.testing.assert_allclose([n.cosine for n in ns], want[i, order], atol=1e-10)
    # the hidden states themselves work as data too (moments streamed from them)
    # (for this head, V < d: the moments of its centered logits, equal up to rounding)
    got = neighbours(head, [0], k=3, view="logit", data=H)["0"]
    ref = neighbours(head, [0], k=3, view="logit", data=mom)["0"]
    assert [n.index for n in got] == [n.index for n in ref]
    np.testing.assert_allclose([n.cosine for n in got], [n.cosine for n in ref], atol=1e-12)


def test_logit_view_without_data_is_a_one_line_error(net) -> None:
    from unembed._checks import UnembedError
    from unembed.neighbours import neighbours
    from unembed.views import cosine, similarity_matrix

    head = _head_of(net[0])
    for call in (lambda: cosine(head, 0, 1, "logit"),
                 lambda: similarity_matrix(head, view="logit"),
                 lambda: neighbours(head, [0], view="logit"),
                 lambda: neighbours(head, [0], view="coprob")):
        with pytest.raises(UnembedError, match="'data' argument .* must be given") as e:
            call()
        assert "\n" not in str(e.value)


def test_constant_centered_logit_has_no_logit_cosine() -> None:
    """A label whose centered logit is constant on the data (here: every label's row is the
    same plus a multiple of a direction the data never varies along)."""
    from unembed import Head
    from unembed._checks import UnembedError
    from unembed.views import cosine, similarity_matrix

    rng = np.random.default_rng(0)
    H = np.c_[rng.standard_normal((100, 2)), np.full(100, 3.0)]  # no variance along e_3
    W = np.c_[rng.standard_normal((4, 2)), np.zeros(4)]
    W[1, :2] = W[[0, 2, 3], :2].sum(axis=0) / 3  # the centered row of label 1 is along e_3
    W[1, 2] = 1.0
    head = Head(W)
    mom = HiddenMoments.from_states(H, source="H")
    S = similarity_matrix(head, view="logit", data=mom)
    assert np.isnan(S[1, [0, 2, 3]]).all() and np.isfinite(S[0, 2])
    with pytest.raises(UnembedError, match="does not vary on the data"):
        cosine(head, 0, 1, "logit", data=mom)


def _coprob_dense(P: np.ndarray) -> np.ndarray:
    """The co-probability matrix formed whole: cosines of the probability columns."""
    G = P.T @ P
    n = np.sqrt(np.diag(G))
    return G / np.outer(n, n)


def test_coprob_neighbours_against_the_dense_matrix(net) -> None:
    from unembed.neighbours import neighbours

    m, x = net
    H, _, z = _state(m, x)
    P = torch.softmax(torch.from_numpy(z), 1).numpy()  # the torch model's probabilities
    C = _coprob_dense(P)
    head = _head_of(m)
    batches = lambda: (H[s:s + 37] for s in range(0, len(H), 37))  # noqa: E731
    for data in (H, batches):
        got = neighbours(head, None, k=4, view="coprob", data=data)
        for lab, ns in got.items():
            i = head.index(lab)
            order = sorted((j for j in range(V) if j != i), key=lambda j: (-C[i, j], j))[:4]
            assert [n.index for n in ns] == order
            np.testing.assert_allclose([n.cosine for n in ns], C[i, order], atol=1e-12)
    from unembed._checks import UnembedError

    with pytest.raises(UnembedError, match="hidden states themselves"):
        neighbours(head, [0], view="coprob", data=HiddenMoments.from_states(H))
