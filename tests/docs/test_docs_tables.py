"""The tables of README.md and docs/ that state what the code does match the code's own
declarations, cell by cell: the views' invariances, the symmetries, the tolerances, the audit's
measures, the exit codes. (Whether a declaration is *true* is tested elsewhere: the views'
invariances in tests/analyses/test_view_symmetries.py, the tolerances in
tests/analyses/test_equivalence.py.)"""

from __future__ import annotations

from pathlib import Path

from unembed._tolerance import TOLERANCES
from unembed.accumulators import MEASURES
from unembed.cli import EXIT_CODES
from unembed.gauges import SYMMETRY_NAMES
from unembed.views import ALL_VIEWS, DATA_VIEWS, INVARIANT_UNDER

ROOT = Path(__file__).resolve().parents[2]


def table(page: str, header_start: str) -> list[list[str]]:
    """The rows (cells stripped, header and rule dropped) of the markdown table whose header
    line starts with ``header_start``."""
    lines = (ROOT / page).read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(header_start)]
    assert len(starts) == 1, f"{page}: {len(starts)} tables start with {header_start!r}"
    rows = []
    for line in lines[starts[0] + 2:]:
        if not line.startswith("|"):
            break
        cells = line.strip().strip("|").replace("\\|", "\0").split("|")
        rows.append([c.strip().replace("\0", "|") for c in cells])
    assert rows, f"{page}: the table {header_start!r} has no rows"
    return rows


def _yes_no(cell: str) -> bool:
    word = cell.split()[0]
    assert word in ("yes", "no"), cell
    return word == "yes"


def test_views_invariance_table_is_the_declaration() -> None:
    columns = {"T": "translation", "B": "bias_shift", "R": "reparametrization", "N": "null_space"}
    assert set(columns.values()) == set(SYMMETRY_NAMES)
    rows = table("docs/views.md", "| view | T | B | R | N | needs data |")
    assert [r[0].strip("`") for r in rows] == list(ALL_VIEWS)
    for view, *cells in ((r[0].strip("`"), *r[1:]) for r in rows):
        for symbol, cell in zip(columns, cells[:4], strict=True):
            declared = columns[symbol] in INVARIANT_UNDER[view]
            assert _yes_no(cell) == declared, (view, symbol, cell)
        assert _yes_no(cells[4]) == (view in DATA_VIEWS), (view, "needs data")


def test_symmetries_table_names_the_code_symmetries() -> None:
    rows = table("docs/symmetries.md", "| name | parameters after | holds when |")
    assert tuple(r[0].strip("`") for r in rows) == SYMMETRY_NAMES


def test_tolerance_table_is_the_code_table() -> None:
    rows = table("docs/feasibility.md", "| dtype | `probability`")
    assert [r[0] for r in rows] == list(TOLERANCES)
    for dtype, probability, logits in rows:
        assert float(probability) == TOLERANCES[dtype].probability, dtype
        assert float(logits) == TOLERANCES[dtype].logits, dtype


def test_audit_measures_table_is_the_code_list() -> None:
    rows = table("docs/audit.md", "| measure | definition | undefined when |")
    assert tuple(r[0].strip("`") for r in rows) == MEASURES


def test_readme_exit_codes_are_the_cli_codes() -> None:
    rows = table("README.md", "| code | meaning |")
    assert {int(code): meaning for code, meaning in rows} == EXIT_CODES
