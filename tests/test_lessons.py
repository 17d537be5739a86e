"""Every lesson notebook runs through a real Jupyter kernel, in fast mode, without error,
and is stored executed (in full mode), so it reads on a repository page without running."""

import importlib.util
from pathlib import Path

import nbformat
import pytest

LESSONS_DIR = Path(__file__).resolve().parent.parent / "lessons"
_spec = importlib.util.spec_from_file_location("lesson_runner", LESSONS_DIR / "run.py")
lesson_runner = importlib.util.module_from_spec(_spec)  # lessons/run.py
_spec.loader.exec_module(lesson_runner)

LESSONS = lesson_runner.lessons()


def test_there_is_a_course():
    assert len(LESSONS) >= 1
    numbers = [int(p.name[:2]) for p in LESSONS]
    assert numbers == list(range(1, len(LESSONS) + 1)), "lessons are numbered 01, 02, ... in order"
    readme = (LESSONS_DIR / "README.md").read_text()
    for path in LESSONS:
        assert path.name in readme, f"lessons/README.md does not list {path.name}"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_executes_in_fast_mode(path):
    notebook = lesson_runner.execute(path, fast=True)  # raises on any cell's error
    assert any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_is_stored_executed_without_errors(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.execution_count is not None for cell in code), (
        f"{path.name} is stored unexecuted: run `python lessons/run.py {path.name[:2]}`"
    )
    errors = [o for cell in code for o in cell.outputs if o.output_type == "error"]
    assert not errors, f"{path.name} is stored with an error output"


def test_lessons_folder_stays_small():
    size = sum(p.stat().st_size for p in LESSONS_DIR.rglob("*") if p.is_file())
    assert size < 8 * 2**20, f"lessons/ holds {size / 2**20:.1f} MB; keep pictures small"
