"""No code from a model file: a pickle payload (its ``__reduce__`` writes a marker file) inside
a real spaCy pipeline's torch-based layer, or in a torch file, never runs, whatever
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` says; the refusal is one line, exit 2."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from unembed import UnembedError, load
from unembed.cli import main

spacy = pytest.importorskip("spacy")
torch = pytest.importorskip("torch")


class Payload:
    """Unpickling it runs code: it writes ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (exec, (f"import pathlib; pathlib.Path({str(self.marker)!r}).write_text('ran')",))


@spacy.registry.architectures("unembed_test.TorchTok2Vec.v1")
def torch_tok2vec(width: int):  # type: ignore[no-untyped-def]
    """spaCy's HashEmbedCNN followed by a torch Linear layer (thinc's PyTorchShim)."""
    from spacy.ml.models import build_hash_embed_cnn_tok2vec
    from thinc.api import PyTorchWrapper, chain, with_array

    t2v = build_hash_embed_cnn_tok2vec(width=width, depth=1, embed_size=100, window_size=1,
                                       maxout_pieces=2, subword_features=False,
                                       pretrained_vectors=None)
    return chain(t2v, with_array(PyTorchWrapper(torch.nn.Linear(width, width))))


def _torch_pipeline(path: Path) -> Path:
    from spacy.training import Example

    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec", config={"model": {"@architectures": "unembed_test.TorchTok2Vec.v1",
                                              "width": 16}})
    nlp.initialize(lambda: [Example.from_dict(nlp.make_doc("the cat sat"), {})])
    nlp.to_disk(path)
    return path


def _poison(pipeline: Path, marker: Path) -> None:
    """Replace the torch layer's saved state by a torch.save'd dict holding the payload; check
    that the payload is live (unpickled without weights_only, it writes the marker)."""
    import srsly

    file = pipeline / "tok2vec" / "model"
    msg = srsly.msgpack_loads(file.read_bytes())
    buf = io.BytesIO()
    torch.save({"weight": Payload(marker)}, buf)
    n = 0
    for shims in msg["shims"]:
        for k, shim in enumerate(shims):
            inner = srsly.msgpack_loads(shim)
            inner["state"] = buf.getvalue()
            shims[k] = srsly.msgpack_dumps(inner)
            n += 1
    assert n == 1, "the pipeline should hold one torch layer"
    file.write_bytes(srsly.msgpack_dumps(msg))
    torch.load(io.BytesIO(buf.getvalue()), weights_only=False)  # the control: it runs
    assert marker.read_text() == "ran"
    marker.unlink()


@pytest.fixture(scope="module")
def clean_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _torch_pipeline(tmp_path_factory.mktemp("torchpipe") / "pipeline")


def test_a_clean_torch_layer_loads_with_weights_only(clean_pipeline: Path) -> None:
    """The guard does not break honest torch layers: their state dict is tensors only."""
    import numpy as np

    from unembed.sources.spacy_read import read_pipeline

    ref = spacy.load(clean_pipeline)
    got = read_pipeline(clean_pipeline)
    a = ref("the cat sat on the mat").tensor
    b = got("the cat sat on the mat").tensor
    assert a.shape == b.shape and np.array_equal(a, b)


@pytest.mark.parametrize("env", [None, "1"])
def test_a_payload_in_a_torch_layer_never_runs(clean_pipeline: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str],
                                               env: str | None) -> None:
    import shutil

    pipe = tmp_path / "pipeline"
    shutil.copytree(clean_pipeline, pipe)
    marker = tmp_path / "marker"
    _poison(pipe, marker)
    if env is None:
        monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", raising=False)
    else:
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", env)
    with pytest.raises(UnembedError, match="pickled objects other than tensors") as e:
        load(pipe)
    assert str(pipe) in str(e.value) and "\n" not in str(e.value)
    assert not marker.exists()
    code = main(["inspect", str(pipe)])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "pickled objects" in err
    assert not marker.exists()
    import os

    assert os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD") == env  # restored after


@pytest.mark.parametrize("env", [None, "1"])
def test_a_payload_in_a_torch_file_never_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str],
                                              env: str | None) -> None:
    """Every torch.load of unembed passes weights_only=True itself (the variable only
    overrides an unset argument)."""
    marker = tmp_path / "marker"
    f = tmp_path / "head.pt"
    torch.save({"weight": torch.zeros(3, 2), "x": Payload(marker)}, f)
    if env is None:
        monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", raising=False)
    else:
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", env)
    code = main(["inspect", str(f)])
    _, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err and str(f) in err
    assert not marker.exists()


def test_every_torch_load_in_unembed_says_weights_only() -> None:
    """Source check beside the behaviour tests: each torch.load call names weights_only=True
    (an unset argument is what the environment variable can flip)."""
    import re

    src = Path(__file__).resolve().parents[2] / "src" / "unembed"
    calls = []
    for py in src.rglob("*.py"):
        text = py.read_text()
        for m in re.finditer(r"torch\.load\(", text):
            end = text.index(")", m.end())
            line = text.count("\n", 0, m.start()) + 1
            calls.append((py.name, line, text[m.start():end + 1]))
    code_calls = [c for c in calls if "``" not in c[2] and "def " not in c[2]]
    assert code_calls
    for name, line, call in code_calls:
        if "orig_load" in call:
            continue
        assert "weights_only=True" in call, f"{name}:{line}: {call}"
