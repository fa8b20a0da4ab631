"""The shared helpers: atomic writes (unembed._io), progress bars (unembed._progress), the
tolerance table (unembed._tolerance) and tensor conversion (unembed._tensors)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from unembed._checks import UnembedError
from unembed._io import PICKLE_SUFFIXES, atomic_target, atomic_write, check_target, is_pickle
from unembed._progress import progress_bars, show_progress
from unembed._tolerance import TOLERANCES, coarsest, tolerance


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


# --------------------------------------------------------------------------- atomic writes
def test_file_written_refused_then_replaced(tmp_path: Path) -> None:
    out = tmp_path / "w.bin"
    atomic_write(out, lambda t: t.write_bytes(b"old"), force=False)
    with pytest.raises(UnembedError, match=r"w\.bin: already exists; pass --force"):
        atomic_write(out, lambda t: t.write_bytes(b"new"), force=False)
    assert out.read_bytes() == b"old"
    atomic_write(out, lambda t: t.write_bytes(b"new"), force=True)
    assert out.read_bytes() == b"new" and _listing(tmp_path) == ["w.bin"]


def test_directory_replaced_whole(tmp_path: Path) -> None:
    out = tmp_path / "report"

    def write(files: dict[str, str]):  # type: ignore[no-untyped-def]
        def w(d: Path) -> None:
            for k, v in files.items():
                (d / k).write_text(v)
        return w

    atomic_write(out, write({"a": "1", "b": "2"}), force=False, directory=True)
    atomic_write(out, write({"c": "3"}), force=True, directory=True)
    assert _listing(out) == ["c"] and (out / "c").read_text() == "3"
    assert _listing(tmp_path) == ["report"]
    # a file replaced by a directory and back
    f = tmp_path / "x"
    f.write_text("file")
    atomic_write(f, write({"in": "dir"}), force=True, directory=True)
    assert f.is_dir() and _listing(f) == ["in"]
    atomic_write(f, lambda t: t.write_text("file again"), force=True)
    assert f.read_text() == "file again" and sorted(_listing(tmp_path)) == ["report", "x"]


def test_failure_leaves_old_output_and_no_temporary(tmp_path: Path) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "weights").write_text("original")

    class Refused(Exception):
        pass

    with pytest.raises(Refused), atomic_target(out, force=True, directory=True) as tmp:
        (tmp / "weights").write_text("half-writ")
        raise Refused  # e.g. the written model failed its equivalence check
    assert (out / "weights").read_text() == "original"
    assert _listing(tmp_path) == ["model"]


def test_nothing_written_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UnembedError, match="nothing was written"):
        atomic_write(tmp_path / "o", lambda t: None, force=False)
    assert _listing(tmp_path) == []


def test_refusals_come_before_any_work(tmp_path: Path) -> None:
    calls: list[Path] = []
    with pytest.raises(UnembedError, match="no such directory for the output"):
        atomic_write(tmp_path / "missing" / "o", calls.append, force=True)
    (tmp_path / "afile").write_text("")
    with pytest.raises(UnembedError, match="no such directory"):
        atomic_write(tmp_path / "afile" / "o", calls.append, force=True)
    assert calls == []


def test_unwritable_parent_refused(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        candidates = [ro, Path("/sys"), Path("/proc/sys")]
        target = None
        for c in candidates:
            try:
                fd = os.open(c / ".unembed-probe", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except OSError:
                target = c
                break
            os.close(fd)
            os.unlink(c / ".unembed-probe")
        if target is None:
            pytest.skip("no unwritable directory on this machine (running as root)")
        calls: list[Path] = []
        with pytest.raises(UnembedError) as e:
            atomic_write(target / "out.npy", calls.append, force=False)
        msg = str(e.value)
        assert msg.startswith(f"{target}:") and "cannot write the output out.npy" in msg
        assert "\n" not in msg and calls == []
    finally:
        ro.chmod(0o755)


def test_stale_temporaries_removed_live_ones_kept(tmp_path: Path) -> None:
    dead = _dead_pid()
    stale_file = tmp_path / f".o.unembed-tmp-{dead}"
    stale_file.write_text("junk")
    stale_dir = tmp_path / f".o.unembed-old-{dead}"
    stale_dir.mkdir()
    (stale_dir / "f").write_text("junk")
    live = tmp_path / f".o.unembed-tmp-{os.getppid()}"  # our parent is alive
    live.write_text("someone else's")
    other = tmp_path / f".other.unembed-tmp-{dead}"  # another output's: not ours to touch
    other.write_text("x")
    (tmp_path / "o").write_text("current")
    atomic_write(tmp_path / "o", lambda t: t.write_text("new"), force=True)
    assert (tmp_path / "o").read_text() == "new"
    assert _listing(tmp_path) == sorted(["o", live.name, other.name])


def test_output_moved_aside_by_a_dead_run_is_put_back(tmp_path: Path) -> None:
    aside = tmp_path / f".rep.unembed-old-{_dead_pid()}"
    aside.mkdir()
    (aside / "index.html").write_text("the user's report")
    # the next run without --force finds the output again and refuses to replace it
    with pytest.raises(UnembedError, match="already exists"):
        check_target(tmp_path / "rep", force=False)
    assert (tmp_path / "rep" / "index.html").read_text() == "the user's report"


def test_pickle_suffixes() -> None:
    assert PICKLE_SUFFIXES == (".pkl", ".pickle", ".joblib")
    assert [is_pickle(p) for p in ("m.pkl", "m.Pickle", "d/m.joblib", "m.pt", "pkl")] == [
        True, True, True, False, False]


# --------------------------------------------------------------------------- progress
def _read_all(fd: int) -> bytes:
    import select

    out = b""
    while select.select([fd], [], [], 0.2)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    return out


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_progress_drawn_on_a_terminal_only_when_enabled() -> None:
    master, slave = os.openpty()
    with os.fdopen(slave, "w", closefd=True) as term:
        assert show_progress(True, term) and not show_progress(False, term)
        with progress_bars(True, stream=term, transient=False) as bars:
            t = bars.add("rows", total=7)
            bars.advance(t, 7)
        assert bars.shown
        drawn = _read_all(master).decode("utf-8", "replace")
        assert "rows" in drawn and "7/7" in drawn
        with progress_bars(False, stream=term) as bars:
            bars.advance(bars.add("hidden", total=3), 3)
        assert not bars.shown and _read_all(master) == b""
    os.close(master)


def test_progress_silent_when_not_a_terminal(tmp_path: Path) -> None:
    with open(tmp_path / "log", "w") as f:
        with progress_bars(True, stream=f) as bars:
            say = bars.step("export")
            say("writing")
            bars.advance(bars.add("rows", total=2), 2)
        assert not bars.shown
    assert (tmp_path / "log").read_text() == ""


# --------------------------------------------------------------------------- tolerances
def test_table_is_ordered_and_columns_are_what_they_claim() -> None:
    names = list(TOLERANCES)
    assert names == ["float64", "float32", "float16", "bfloat16"]
    for a, b in itertools.pairwise(names):
        assert TOLERANCES[a].probability < TOLERANCES[b].probability
        assert TOLERANCES[a].logits < TOLERANCES[b].logits
    assert coarsest("float32", "float16") == "float16" and coarsest("int8") == "float32"
    assert tolerance("complex64") == TOLERANCES["float32"]


def test_probability_tolerance_covers_rounding_the_weights() -> None:
    # The verdict's tolerance must accept a head rounded to its dtype: measured here with
    # softmax written out by hand, and the bound |dp| <= max|dz| / 2 checked on the way.
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    W = rng.standard_normal((300, 64))
    H = rng.standard_normal((200, 64)) * 0.5
    for name in ("float32", "float16", "bfloat16"):
        Wr = torch.from_numpy(W).to(getattr(torch, name)).to(torch.float64).numpy()
        z, zr = H @ W.T, H @ Wr.T
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        q = np.exp(zr - zr.max(1, keepdims=True))
        q /= q.sum(1, keepdims=True)
        dp, dz = np.abs(p - q).max(), np.abs(z - zr).max()
        assert dp <= dz / 2 + 1e-15
        assert dp <= TOLERANCES[name].probability, (name, dp)


def test_logits_tolerance_accepts_own_arithmetic_refuses_a_wrong_reading() -> None:
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    W = torch.randn(50, 256, generator=g, dtype=torch.float64)
    H = torch.randn(64, 256, generator=g, dtype=torch.float64)
    for name in ("float32", "bfloat16"):
        dt = getattr(torch, name)
        Wd, Hd = W.to(dt), H.to(dt)
        z_model = (Hd @ Wd.T).to(torch.float64)  # the model's own kernel and precision
        z_head = Hd.to(torch.float64) @ Wd.to(torch.float64).T  # the head in float64
        bound = TOLERANCES[name].logits * (1 + z_model.abs().max().item())
        assert (z_model - z_head).abs().max().item() <= bound
        # a reading that misses a final norm's gain of 1.1 is far outside
        assert (z_model - 1.1 * z_head).abs().max().item() > bound


# --------------------------------------------------------------------------- tensors
def test_tensor_conversion_exact() -> None:
    torch = pytest.importorskip("torch")
    from unembed._tensors import tensor_to_numpy, to_f64, to_native

    x = torch.randn(5, 7, dtype=torch.float64)
    b = x.to(torch.bfloat16)
    arr, name = tensor_to_numpy(b)
    # independent: a bfloat16 is the top 16 bits of a float32
    bits = b.view(torch.int16).numpy().astype(np.uint16).astype(np.uint32) << 16
    assert name == "bfloat16" and arr.dtype == np.float32
    assert np.array_equal(arr, bits.view(np.float32))
    h = x.to(torch.float16)
    arr16, name16 = tensor_to_numpy(h)
    assert name16 == "float16" and arr16.dtype == np.float16
    assert to_native(h).dtype == np.float32 and np.array_equal(to_native(h), arr16)
    assert to_f64(b).dtype == np.float64 and np.array_equal(to_f64(b), arr)
    ints, iname = tensor_to_numpy(torch.arange(3))
    assert iname == "int64" and ints.tolist() == [0, 1, 2]
