"""fastText: a hierarchical softmax has no label rows and is refused with that reason."""

from __future__ import annotations

import numpy as np
import pytest

from unembed import UnembedError, load
from unembed.cli import main
from unembed.sources.fasttext_model import read_header

LINES = ["__label__animal the cat sat on the mat", "__label__food eat an apple pie",
         "__label__city paris at night", "__label__animal a dog ran"] * 10


@pytest.fixture(scope="module")
def hs_model(tmp_path_factory):
    """A tiny fastText classifier trained with loss='hs' (single thread; this build of fastText
    occasionally reports NaN on such tiny data, so a few attempts are made)."""
    fasttext = pytest.importorskip("fasttext")
    d = tmp_path_factory.mktemp("ft")
    (d / "train.txt").write_text("\n".join(LINES) + "\n", encoding="utf-8")
    for _ in range(20):
        try:
            m = fasttext.train_supervised(input=str(d / "train.txt"), loss="hs", dim=4, epoch=2,
                                          thread=1, verbose=0)
        except RuntimeError:
            continue
        m.save_model(str(d / "model.bin"))
        return m, d / "model.bin"
    pytest.fail("fastText training failed 20 times")


def test_hierarchical_softmax_is_refused(hs_model):
    m, path = hs_model
    # the reason is true: the V rows of the output matrix are the V - 1 inner nodes of the tree
    # (trained) and one row no label path uses (still zero), not one row per label
    out = m.get_output_matrix()
    assert out.shape[0] == len(m.get_labels()) == 3
    assert np.all(out[-1] == 0) and np.all(np.any(out[:-1] != 0, axis=1))
    hdr = read_header(path)
    assert hdr is not None and hdr.loss == "hs" and hdr.model == "supervised" and hdr.dim == 4
    for source in (m, str(path)):
        with pytest.raises(UnembedError, match="hierarchical softmax.*Huffman tree"):
            load(source)


def test_cli_refuses_it_in_one_line(hs_model, capsys):
    _, path = hs_model
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "hierarchical softmax" in err


def test_other_files_are_not_taken_for_fasttext(tmp_path):
    p = tmp_path / "w.npy"
    np.save(p, np.eye(3))
    assert read_header(p) is None
