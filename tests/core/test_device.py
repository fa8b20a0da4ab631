"""--device and --model-dtype: the forward passes run where and as asked, the head stays the
checkpoint's, and a device that is not there is an error, never a silent fall-back. (No GPU
here: the device path is run on "cpu"; the same code moves the model and the inputs.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from unembed import UnembedError
from unembed.device import resolve_device, resolve_dtype_name
from unembed.sources import load

torch = pytest.importorskip("torch")


def test_resolve_device_and_dtype() -> None:
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == want
    assert resolve_device("auto").type == want
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UnembedError, match="torch sees no CUDA GPU"):
            resolve_device("cuda:0")
    with pytest.raises(UnembedError, match="'device' argument of load must be a torch device"):
        resolve_device("gpu-please")
    assert resolve_dtype_name("BF16") == "bfloat16"
    with pytest.raises(UnembedError, match="'model_dtype' argument of load must be one of"):
        resolve_dtype_name("int8")


def test_hf_lm_runs_in_the_dtype_asked_and_keeps_the_stored_head(tiny_gpt2_dir: Path) -> None:
    ref = load(tiny_gpt2_dir)
    ids = ref.random_inputs(2, 7, seed=3)
    # float64 forward passes: the model's own logits equal the head's to float64 precision
    m64 = load(tiny_gpt2_dir, device="cpu", model_dtype="float64")
    h, z = m64.forward(ids)
    assert m64.model.dtype == torch.float64
    assert next(m64.model.parameters()).device.type == "cpu"
    np.testing.assert_array_equal(m64.head.W, ref.head.W)  # the checkpoint's head
    np.testing.assert_allclose(z, m64.head.logits(h), rtol=0, atol=1e-9)
    # and they agree with the float32 run to float32 precision
    _, z32 = ref.forward(ids)
    np.testing.assert_allclose(z, z32, rtol=0, atol=1e-4 * (1 + np.abs(z).max()))
    # bfloat16: the model runs rounded; its logits are checked against the head to bf16
    mb = load(tiny_gpt2_dir, device="cpu", model_dtype="bfloat16")
    _, zb = mb.forward(ids)
    assert mb.model.dtype == torch.bfloat16 and zb.dtype == np.float64
    np.testing.assert_array_equal(mb.head.W, ref.head.W)
    assert np.abs(zb - z).max() <= 8e-2 * (1 + np.abs(z).max())


def test_torch_module_moves_only_when_asked() -> None:
    from unembed.demo.models import TinyLM

    lm = TinyLM(50, d=8, layers=1, heads=2, context=16)
    m = load(lm, component="head", device="cpu", model_dtype="float64")
    assert lm.head.weight.dtype == torch.float64
    x = np.random.default_rng(0).integers(0, 50, size=(2, 5))
    h, z = m.forward(x)
    np.testing.assert_allclose(z, m.head.logits(h), rtol=0, atol=1e-10)


def test_cli_audit_with_device_and_dtype(tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    from unembed.cli import main

    data = tmp_path / "t.txt"
    data.write_text("the cat sat on the mat and the dog sat on the cat\n" * 8)
    out = tmp_path / "rep"
    rc = main(["audit", "--model", str(tiny_gpt2_dir), "--data", str(data), "--out", str(out),
               "--window", "8", "--top-n", "6", "--no-co-top", "--device", "cpu",
               "--model-dtype", "float64", "--json", "--no-progress"])
    assert rc == 0
    d = json.loads((out / "audit.json").read_text())
    assert d["data"]["n_predictions"] > 0
    rc = main(["audit", "--model", str(tiny_gpt2_dir), "--data", str(data), "--out",
               str(tmp_path / "r2"), "--device", "nosuchdevice", "--json", "--no-progress"])
    assert rc == 2


@pytest.mark.parametrize("bias", [False, True])
def test_argmaxable_fast_pass_on_a_torch_device(bias: bool) -> None:
    from unembed.feasibility import argmaxable_all
    from unembed.head import Head

    rng = np.random.default_rng(11)
    W = rng.standard_normal((300, 6)).astype(np.float32).astype(np.float64)
    for i in range(290, 300):  # inside the hull of three others: never the argmax
        W[i] = rng.dirichlet(np.ones(3)) @ W[rng.choice(290, 3, replace=False)]
    head = Head(W, b=rng.standard_normal(300) * 0.1 if bias else None)
    ref = argmaxable_all(head, workers=1, n_narrowest=0)
    dev = argmaxable_all(head, workers=1, n_narrowest=0, device="cpu")
    np.testing.assert_array_equal(ref.status, dev.status)
    if not bias:  # with a bias a row inside the hull can still win
        assert {str(i) for i in range(290, 300)} <= set(dev.unargmaxable)
    fast = np.flatnonzero(dev.method == "fast")
    assert fast.size > 50
    for i in fast.tolist():  # each fast-pass witness, checked in float64 from scratch
        h = dev.witness(i)
        z = W @ h + (head.b if bias else 0.0)
        assert int(np.argmax(z)) == i and np.sort(z)[-1] > np.sort(z)[-2]
