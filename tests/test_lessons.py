"""Every code cell of every lesson notebook runs, in order, without error."""

import json
from pathlib import Path

import pytest

LESSONS = sorted((Path(__file__).parent.parent / "lessons").glob("*.ipynb"))


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_runs(path, capsys):
    cells = json.loads(path.read_text())["cells"]
    namespace = {}
    for i, cell in enumerate(c for c in cells if c["cell_type"] == "code"):
        source = "".join(cell["source"])
        exec(compile(source, f"{path.name} cell {i}", "exec"), namespace)
