"""A rank question for the sketch's tests: a head of 3000 rows of width 256 lying near an
8-dimensional subspace, its top 64 principal directions, and the centered rows of its first
64 labels as witnesses with their own logits."""

from __future__ import annotations

import numpy as np

from unembed.feasibility.sketch import principal_basis


def rank_question(rng: np.random.Generator, noise: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(W, mean, P, H, own): rows of rank 8 plus ``noise`` times Gaussian noise, drawn from
    ``rng``; P the top 64 principal directions; H = W[:64] - mean; own_i = H_i . W_i."""
    W = rng.standard_normal((3000, 8)) @ rng.standard_normal((8, 256)) \
        + noise * rng.standard_normal((3000, 256))
    m = W.mean(axis=0)
    P = principal_basis(np.cov(W.T, bias=True), 64)
    H = W[:64] - m
    return W, m, P, H, np.einsum("ij,ij->i", H, W[:64])
