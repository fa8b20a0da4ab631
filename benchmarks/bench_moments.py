"""Cost of ``HiddenMoments.update`` (the logit view's moments, accumulated in the audit's
streaming loop) against the forward pass it follows: a GPT-2-sized TinyLM (V=50257, d=768, 12
layers, random weights), 8 windows of 128 = 1024 predictions per batch; one torch thread and one
BLAS thread, as in ``collect``; best of 5, alternating in one process.

    python benchmarks/bench_moments.py
"""

import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from unembed.demo.models import TinyLM
from unembed.demo.training import torch_threads
from unembed.moments import HiddenMoments
from unembed.sources.torch_module import TorchModuleModel

with torch_threads(1):
    torch.manual_seed(0)
    big = TinyLM(50257, d=768, layers=12, heads=12, context=128)
    gm = TorchModuleModel(big, head_name="head", source="gpt2-size")
    ids = np.random.default_rng(0).integers(0, 50257, size=(8, 128))
    fw, mo = [], []
    with threadpool_limits(1, user_api="blas"):
        for _ in range(5):
            t = time.perf_counter()
            h, z = gm.forward_native(ids)
            fw.append(time.perf_counter() - t)
            m = HiddenMoments(d=768)
            t = time.perf_counter()
            m.update(h)
            mo.append(time.perf_counter() - t)
    print(f"forward {min(fw):.3f} s, moments {min(mo):.3f} s, ratio {min(mo) / min(fw):.3f} "
          f"(hidden states {h.dtype}, n = {h.shape[0]})")
