"""Every command's ``--help`` lists its own options first and the shared ones (reading the
model, labels, data, engine, output) after them, in groups titled for what they are; the usage
names the command's own options, not the twenty model-loading ones."""

from __future__ import annotations

import re

import pytest

from unembed.cli import COMMANDS, build_parser, main, subparser

#: the options that read a model, written out here (not taken from the CLI's own declarations)
MODEL_LOADING = frozenset({
    "--model", "--trust-remote-code", "--unique-labels", "--component", "--revision", "--fold",
    "--trust-pickle", "--bias", "--labels", "--link", "--softcap", "--temperature",
    "--allow-degenerate", "--device", "--model-dtype", "--as", "--no-fold-ln",
    "--no-center-unembed", "--no-center-writing-weights", "--transpose"})
#: options every command shares (output, engine, data streaming)
SHARED = MODEL_LOADING | {"--json", "--no-progress", "--engine", "--address", "--workers",
                          "--max-inputs", "--batch-size", "--window"}
GROUP_TITLES = ("reading the model", "labels", "data", "engine", "output")


def _help(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main([command, "--help"]) == 0
    return capsys.readouterr().out


def _sections(text: str) -> dict[str, list[str]]:
    """section title -> the options it lists (first long option of each entry, in order)."""
    out: dict[str, list[str]] = {}
    title = None
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            title = line[:-1].split(" (")[0]
            out[title] = []
        elif title is not None and re.match(r"^  -", line):
            names = re.findall(r"--[a-z][a-z0-9-]*|(?<![\w-])-[a-z]\b", line.split("  ")[1])
            longs = [n for n in names if n.startswith("--")]
            out[title].append(longs[0] if longs else names[0])
    return out


@pytest.mark.parametrize("command", COMMANDS)
def test_help_lists_the_commands_own_options_first(
        command: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(command, capsys)
    sections = _sections(text)
    own = [o for o in sections["options"] if o != "--help"]
    assert own, f"{command}: no options of its own under 'options:'"
    assert own[0] not in SHARED, f"{command} --help starts with {own[0]}"
    assert not MODEL_LOADING & set(own), f"{command}: model-loading options among its own"
    # the model-loading options come only after the command's own, in titled groups
    listed = [o for opts in sections.values() for o in opts]
    first_loading = min((listed.index(o) for o in MODEL_LOADING if o in listed), default=None)
    if first_loading is not None:
        assert listed.index(own[0]) < first_loading
        assert set(sections["reading the model"]) | set(sections["labels"]) \
            | set(sections.get("engine", [])) >= MODEL_LOADING & set(listed)
    titles = [t for t in sections if t in GROUP_TITLES]
    assert titles == [t for t in GROUP_TITLES if t in titles], titles
    assert list(sections).index("options") <= 1  # after the positionals, before any group
    # the usage names the command's own options, then the shared groups by title
    usage = text.split("\n\n")[0]
    in_usage = [o for o in re.findall(r"(?<![\w-])--?[a-zA-Z][\w-]*", usage) if o != "-h"]
    assert in_usage and in_usage[0] == own[0]
    assert not MODEL_LOADING & set(in_usage)
    if titles:
        assert "and the options of: " + ", ".join(titles) in " ".join(usage.split())
    # nothing was lost: every option of the command is listed
    sub = subparser(build_parser(), command)
    assert sub is not None
    shown = set(listed)
    for action in sub._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if longs and action.help != "==SUPPRESS==":
            assert longs[0] in shown, f"{command}: {longs[0]} missing from --help"


def test_help_is_shorter_than_it_was(capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """At 80 columns every command's help is at most 100 lines (they were 98-128 with the
    model-loading options first and a usage naming all of them)."""
    monkeypatch.setenv("COLUMNS", "80")
    for command in COMMANDS:
        assert len(_help(command, capsys).splitlines()) <= 100, command
