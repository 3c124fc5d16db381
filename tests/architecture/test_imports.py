"""The arrows point inward: adapters (components, pipelines, serving, the CLI) use the core and the
core uses none of them (contracts in pyproject.toml, [tool.importlinter])."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The adapters' folders as installed; the bare folder names belong to other projects.
BARE_NAMES = {"components", "pipelines", "serving"}


def test_the_import_contracts_hold():
    linter = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(linter), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize("folder", ["modelfactory", "components", "pipelines", "serving"])
def test_nothing_imports_the_adapters_by_their_folder_names(folder):
    offenders = []
    for path in sorted((REPO / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(REPO)}:{node.lineno} imports {name}"
                for name in names
                if name.split(".")[0] in BARE_NAMES
            ]
    assert not offenders, "\n".join(offenders)
