"""The per-batch work of the audit's streaming pass over a batch of logits (n, V): the top k
labels of every row, the row's log-normaliser, and the label tally's sums (sum of p per label,
argmax counts), all in float64 from the exact widening of the model's own logits.

Two implementations of the same arithmetic:

* :func:`summarise_numpy` for numpy arrays (float32 or float64; no torch needed);
* :func:`summarise_torch` for torch tensors on the model's device (a GPU holds one batch of
  logits; only (n, k) indices, (n,) normalisers and (V,) sums come back to the host).

:func:`summarise` dispatches: a numpy array, or a torch tensor on the CPU (viewed as numpy
without a copy: numpy's float64 exp is several times faster than torch's on a CPU), goes to
the numpy kernel; a tensor on an accelerator stays there.

>>> import numpy as np
>>> z = np.array([[2.0, 0.0, 1.0, -1.0]], dtype=np.float32)
>>> top, best = top_k_rows(z, 2)
>>> sorted(top[0].tolist()), best.tolist()
([0, 2], [0])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from unembed.accumulators import LabelTally
from unembed.head import logits_to_log_probs

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["selected_log_probs", "summarise", "summarise_numpy", "summarise_torch",
           "top_k_rows"]

#: Below this bound on |logit|, exp(z) in float64 neither overflows (even summed over 10^8
#: labels) nor leaves the normal range, so the softmax needs no shift by the row maximum.
NO_SHIFT = 600.0

#: Stripes of the blocked top-k (see :func:`top_k_rows`).
_STRIPES = 256


def top_k_rows(z: NDArray[Any], k: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Per row of z (n, V): the indices of k largest values (n, min(k, V)), in no order, and
    an argmax (n,) (on ties: the lowest index among those k).

    For large V the rows are cut into S = 256 interleaved stripes (stripe j holds the columns
    j, j + S, j + 2S, ...; the last V mod S columns are candidates always). t, the k-th largest
    stripe maximum, is at most the k-th largest value: k stripes have a value >= t. A value of
    a stripe whose maximum is below t is below k other values, so it is not among the k
    largest: the k largest values of the row lie in the k stripes of largest maximum (and the
    tail), and only those V k / S candidates are ranked. Rows where more than k stripes tie at
    t are ranked whole.
    """
    n, v = z.shape
    k = min(k, v)
    if v < 16 * _STRIPES or 8 * k > _STRIPES:
        top: NDArray[np.int64] = np.argpartition(z, v - k, axis=1)[:, v - k:].astype(np.int64)
    else:
        s = _STRIPES
        L = v // s
        smax = z[:, : L * s].reshape(n, L, s).max(axis=1)  # (n, S)
        tb = np.argpartition(smax, s - k, axis=1)[:, s - k:]  # the k stripes of largest max
        cand = (tb[:, :, None] + s * np.arange(L)).reshape(n, k * L)
        if v > L * s:
            cand = np.concatenate([cand, np.broadcast_to(np.arange(L * s, v), (n, v - L * s))],
                                  axis=1)
        vals = np.take_along_axis(z, cand, axis=1)
        m = vals.shape[1]
        top = np.take_along_axis(cand, np.argpartition(vals, m - k, axis=1)[:, m - k:],
                                 axis=1).astype(np.int64)
        t = np.take_along_axis(smax, tb, axis=1).min(axis=1)
        ties = np.flatnonzero((smax >= t[:, None]).sum(axis=1) > k)
        for r in ties.tolist():
            top[r] = np.argpartition(z[r], v - k)[v - k:]
    tv = np.take_along_axis(z, top, axis=1)
    best = np.where(tv == tv.max(axis=1, keepdims=True), top, v).min(axis=1).astype(np.int64)
    return top, best


def _as_float(z: NDArray[Any]) -> NDArray[Any]:
    if z.dtype == np.float16:
        z = z.astype(np.float32)
    elif z.dtype not in (np.float32, np.float64):
        z = z.astype(np.float64)
    if not (z.flags.c_contiguous and z.flags.writeable):
        z = np.array(z, order="C")
    return z


def summarise_numpy(z: NDArray[Any], link: str, top_k: int,
                    tally: LabelTally) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """One batch of logits (n, V): add it to ``tally`` and return its top-k label indices
    (n, k) (:func:`top_k_rows`) and, for softmax, the log-normaliser log sum_k exp(z_k) (n,)
    (zeros for sigmoid).

    ``z`` may be float64 or the model's own float32: float32 widens exactly to float64, so the
    top-k sets and argmaxes are those of the float64 logits, and every exp, sum and
    log-normaliser is computed in float64 from the exact widened values, chunk by chunk of
    rows (about 2**19 entries: the chunk and the float64 buffer stay in cache and the buffer
    is reused, never a whole (n, V) float64 copy): the top k, one exp written to the buffer,
    one row sum and one weighted column
    sum (sum_i p_i = sum_i exp(z_i) / s_row). When every row maximum of the chunk lies in
    [0, 600), or every logit in (-600, 600), exp(z) is taken directly (the same float64
    rounding, one pass fewer); otherwise exp(z - max).
    """
    z = _as_float(z)
    n, v = z.shape
    top = np.empty((n, min(top_k, v)), dtype=np.int64)
    best = np.empty(n, dtype=np.int64)
    lognorm = np.zeros(n)
    sum_p = np.zeros(v)
    step = max(1, (1 << 19) // max(v, 1))
    buf = np.empty((min(step, n), v))
    for r0 in range(0, n, step):
        zc = z[r0:r0 + step]
        e = buf[: zc.shape[0]]
        # the top k while the chunk is in cache
        top[r0:r0 + step], best[r0:r0 + step] = top_k_rows(zc, top_k)
        if link == "softmax":
            m = zc[np.arange(zc.shape[0]), best[r0:r0 + step]].astype(np.float64)
            # exp(z) unshifted when it neither overflows nor underflows where exp(z - max)
            # would not: every row maximum in [0, 600) (then exp(z_i) < 2^-1022 implies
            # p_i < 2^-1022 too), else every logit in (-600, 600) (a pass more)
            if float(m.max()) < NO_SHIFT and (float(m.min()) >= 0.0
                                              or -NO_SHIFT < float(zc.min())):
                np.exp(zc, out=e, dtype=np.float64)  # the float64 loop, not float32's
                sc = e.sum(axis=1)
                lognorm[r0:r0 + step] = np.log(sc)
            else:
                np.subtract(zc, m[:, None], out=e)
                np.exp(e, out=e)
                sc = e.sum(axis=1)
                lognorm[r0:r0 + step] = m + np.log(sc)
            sum_p += (1.0 / sc) @ e
        else:
            np.negative(zc, out=e)
            np.logaddexp(0.0, e, out=e)
            np.negative(e, out=e)
            np.exp(e, out=e)
            sum_p += e.sum(axis=0)
    tally.add(n, sum_p, np.bincount(best, minlength=v))
    return top, lognorm


def summarise_torch(z: torch.Tensor, link: str, top_k: int,
                    tally: LabelTally) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """:func:`summarise_numpy` on a torch tensor, on the tensor's device: ``torch.topk`` on the
    model's own precision (exact: widening to float64 keeps the order), then per chunk of rows
    (at most 2**24 entries) the float64 widening, exp(z - max), row sums and the tally's
    weighted column sums; only the (n, k) indices, the (n,) log-normalisers and the (V,) sums
    are copied to the host."""
    import torch

    if z.dtype not in (torch.float32, torch.float64):
        z = z.to(torch.float32)
    n, v = z.shape
    k = min(top_k, v)
    with torch.no_grad():
        _, ti = torch.topk(z, k, dim=1)
        tv = torch.gather(z, 1, ti)
        mx = tv.max(dim=1, keepdim=True).values
        best = torch.where(tv == mx, ti, torch.full_like(ti, v)).min(dim=1).values
        lognorm = torch.zeros(n, dtype=torch.float64, device=z.device)
        sum_p = torch.zeros(v, dtype=torch.float64, device=z.device)
        step = max(1, (1 << 24) // max(v, 1))
        for r0 in range(0, n, step):
            zc = z[r0:r0 + step].to(torch.float64)
            if link == "softmax":
                m = mx[r0:r0 + step].to(torch.float64)
                e = torch.exp(zc - m)
                sc = e.sum(dim=1)
                lognorm[r0:r0 + step] = m[:, 0] + torch.log(sc)
                sum_p += (1.0 / sc) @ e
            else:
                sum_p += torch.sigmoid(zc).sum(dim=0)
        top = ti.cpu().numpy().astype(np.int64)
        best_np = best.cpu().numpy().astype(np.int64)
        out_lognorm = lognorm.cpu().numpy()
        tally.add(n, sum_p.cpu().numpy(), np.bincount(best_np, minlength=v))
    return top, out_lognorm


def _is_numpy_view(z: object) -> NDArray[Any] | None:
    """``z`` as a numpy array when it is one, or a torch tensor on the CPU (no copy)."""
    if isinstance(z, np.ndarray):
        return z
    import sys

    torch = sys.modules.get("torch")  # a tensor exists only where torch is imported
    if torch is not None and isinstance(z, torch.Tensor) and z.device.type == "cpu":
        t = z.detach()
        if t.dtype not in (torch.float32, torch.float64):
            t = t.to(torch.float32)
        return np.asarray(t.numpy())
    return None


def summarise(z: object, link: str, top_k: int,
              tally: LabelTally) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """:func:`summarise_numpy` for host arrays, :func:`summarise_torch` for accelerator
    tensors."""
    a = _is_numpy_view(z)
    if a is not None:
        return summarise_numpy(a, link, top_k, tally)
    return summarise_torch(z, link, top_k, tally)  # type: ignore[arg-type]


def selected_log_probs(z_sel: object, lognorm: NDArray[np.float64],
                       link: str) -> NDArray[np.float64]:
    """Log-probabilities (n, k) float64 of some labels from their logits (float32 or float64,
    widened exactly; a torch tensor is copied to the host) and the row log-normaliser."""
    a = _is_numpy_view(z_sel)
    if a is None:
        import torch

        assert isinstance(z_sel, torch.Tensor)
        a = z_sel.detach().to(torch.float64).cpu().numpy()
    z64 = np.asarray(a, dtype=np.float64)
    if link == "softmax":
        out: NDArray[np.float64] = z64 - lognorm[:, None]
        return out
    return logits_to_log_probs(z64, "sigmoid")


def take_columns(z: object, idx: NDArray[np.int64]) -> object:
    """The columns ``idx`` of a batch of logits (numpy array or torch tensor, on its device)."""
    if isinstance(z, np.ndarray):
        return z[:, idx]
    import torch

    assert isinstance(z, torch.Tensor)
    return z[:, torch.as_tensor(idx, device=z.device)]
