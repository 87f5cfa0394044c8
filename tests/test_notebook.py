"""notebooks/colab_serve.ipynb: a valid nbformat 4 notebook whose every shell command is one README gives, in the
order of the README's Colab steps: install, licence, models, token, tunnel tool, serve with the tunnel, bench."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "colab_serve.ipynb"


def commands(lines: list[str]) -> list[str]:
    """Shell commands in `lines`: one per `&&`-joined part, words normalised, comments and prompts dropped."""
    out = []
    for line in lines:
        line = line.strip().removeprefix("!").removeprefix("$ ").strip()
        if not line or line.startswith("#"):
            continue
        for part in line.split("&&"):
            text = part.split(" #", 1)[0]
            try:
                words = shlex.split(text, posix=True)
            except ValueError:  # not a shell line (YAML, a quoted fragment): compared word for word
                words = text.split()
            if words:
                out.append(" ".join(words))
    return out


def readme_commands() -> set[str]:
    inside, lines = False, []
    for line in (REPO / "README.md").read_text().splitlines():
        if line.strip().startswith("```"):
            inside = not inside
        elif inside:
            lines.append(line)
    return set(commands(lines))


def notebook_commands() -> list[str]:
    nb = json.loads(NOTEBOOK.read_text())
    lines = [line for cell in nb["cells"] if cell["cell_type"] == "code"
             for line in cell["source"] if line.lstrip().startswith("!")]
    return commands(lines)


def test_the_notebook_is_valid_nbformat_4() -> None:
    nb = json.loads(NOTEBOOK.read_text())
    assert nb["nbformat"] == 4 and isinstance(nb["cells"], list) and nb["cells"]
    for cell in nb["cells"]:
        assert cell["cell_type"] in ("markdown", "code") and isinstance(cell["source"], list)
        assert cell["cell_type"] == "markdown" or cell["outputs"] == []  # saved without outputs or tokens
    nbformat = pytest.importorskip("nbformat", reason="pip install 'vcamswap[test]'")
    nbformat.validate(nbformat.reads(NOTEBOOK.read_text(), as_version=4))


def test_every_notebook_command_is_one_the_readme_gives() -> None:
    given = readme_commands()
    used = notebook_commands()
    assert used, "the notebook runs no shell command"
    missing = [c for c in used if c not in given]
    assert not missing, f"not in README's code blocks: {missing}"


def test_the_notebook_installs_shows_the_licence_downloads_serves_with_a_tunnel_and_benches() -> None:
    used = notebook_commands()
    order = ["pip install vcamswap[serve,gpu]", "vcamswap models list", "vcamswap models download",
             "vcamswap serve --tunnel cloudflared --token-file token", "vcamswap bench"]
    at = [next((i for i, c in enumerate(used) if step in c), -1) for step in order]
    assert -1 not in at and at == sorted(at), list(zip(order, at, strict=True))
    text = NOTEBOOK.read_text()
    assert "non-commercial" in text and "swap server ready" in text  # the licence said; the laptop's line printed
