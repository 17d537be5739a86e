"""Every lesson notebook runs through a real Jupyter kernel, in fast mode, without error,
and is stored executed (in full mode), so it reads on a repository page without running.

Every exercise follows the contract in ``minigan.course``: an ``exercise`` stub, then its
``check``, then a hidden ``solution``. Each lesson runs twice: as shipped, where every
check must report the stub as not written yet (so the exercise really is the learner's),
and with each exercise replaced by its solution, where every check must pass."""

import importlib.util
from pathlib import Path

import nbformat
import pytest

from minigan import course

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


def _verdicts(notebook) -> list[str]:
    return [lesson_runner.check_verdict(cell) for cell in lesson_runner.tagged(notebook, "check")]


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_exercises_follow_the_contract(path):
    notebook = nbformat.read(path, as_version=4)
    index = {id(cell): i for i, cell in enumerate(notebook.cells)}
    exercises, checks, solutions = (
        lesson_runner.tagged(notebook, tag) for tag in ("exercise", "check", "solution")
    )
    assert len(exercises) >= 2, f"{path.name} has {len(exercises)} exercise cells; at least 2"
    assert len(exercises) == len(checks) == len(solutions), (
        f"{path.name}: {len(exercises)} exercise, {len(checks)} check and "
        f"{len(solutions)} solution cells; each exercise needs one of each"
    )
    ends = [index[id(e)] for e in exercises[1:]] + [len(notebook.cells)]
    for k, (exercise, check, solution, end) in enumerate(
        zip(exercises, checks, solutions, ends), start=1
    ):
        where = f"{path.name}, exercise {k} (cell {index[id(exercise)]})"
        assert all(c.cell_type == "code" for c in (exercise, check, solution)), where
        assert "raise NotImplementedError" in exercise.source, f"{where}: ships solved"
        assert "NotImplementedError" not in solution.source, f"{where}: solution is a stub"
        assert index[id(check)] == index[id(exercise)] + 1, f"{where}: check must follow it"
        assert "course.check(" in check.source, f"{where}: check without course.check"
        assert index[id(check)] < index[id(solution)] < end, (
            f"{where}: its solution must come after its check, before the next exercise"
        )
        hidden = solution.metadata.get("jupyter", {}).get("source_hidden")
        assert hidden is True, f"{where}: the solution cell is not hidden"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_executes_in_fast_mode_as_shipped(path):
    notebook = lesson_runner.execute(path, fast=True)  # raises on any cell's error
    assert any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    verdicts = _verdicts(notebook)
    unsolved = [v for v in verdicts if not v.startswith(course.UNSOLVED)]
    assert not unsolved, f"{path.name}: a stub's check did not say 'not written yet': {unsolved}"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_executes_in_fast_mode_with_solutions(path):
    notebook = lesson_runner.execute(path, fast=True, solutions=True)
    verdicts = _verdicts(notebook)
    failing = [v for v in verdicts if not v.startswith(course.PASSED)]
    assert verdicts and not failing, f"{path.name}: checks that the solutions fail: {failing}"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_is_stored_executed_without_errors(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.execution_count is not None for cell in code), (
        f"{path.name} is stored unexecuted: run `python lessons/run.py {path.name[:2]}`"
    )
    errors = [o for cell in code for o in cell.outputs if o.output_type == "error"]
    assert not errors, f"{path.name} is stored with an error output"
    verdicts = _verdicts(notebook)
    assert all(v.startswith(course.UNSOLVED) for v in verdicts), (
        f"{path.name} is not stored as shipped (every exercise unsolved): {verdicts}"
    )


def test_lessons_folder_stays_small():
    size = sum(p.stat().st_size for p in LESSONS_DIR.rglob("*") if p.is_file())
    assert size < 8 * 2**20, f"lessons/ holds {size / 2**20:.1f} MB; keep pictures small"
