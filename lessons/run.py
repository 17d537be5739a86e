"""Execute the lesson notebooks through a real Jupyter kernel.

    python lessons/run.py               # every lesson in full mode; outputs stored in place
    python lessons/run.py 05 06         # only the lessons whose names start with 05, 06
    python lessons/run.py --fast        # MINIGAN_LESSON_FAST=1: small data, few steps, and
                                        # nothing written (what the tests run in CI)
    python lessons/run.py --fast --solutions   # each exercise cell replaced by its
                                        # solution: every check must pass (writes nothing)

Full mode is how the stored outputs are made: run it after changing a lesson, then
commit the notebook. A cell that raises stops the run with the cell's traceback.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from minigan import course

HERE = Path(__file__).resolve().parent
CELL_TIMEOUT = 1200  # seconds; the longest cell is a full-mode training run


def lessons(prefixes=()) -> list[Path]:
    """The numbered lesson notebooks, in order (those starting with any of ``prefixes``)."""
    paths = sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
    return [p for p in paths if not prefixes or p.name.startswith(tuple(prefixes))]


def tagged(notebook, tag) -> list:
    """The notebook's cells whose metadata ``tags`` include ``tag``, in order."""
    return [cell for cell in notebook.cells if tag in cell.metadata.get("tags", [])]


def with_solutions(notebook) -> nbformat.NotebookNode:
    """A copy of ``notebook`` in which the k-th ``exercise`` cell holds the source of the
    k-th ``solution`` cell: the course as a learner who solved every exercise runs it."""
    notebook = copy.deepcopy(notebook)
    exercises, solutions = tagged(notebook, "exercise"), tagged(notebook, "solution")
    if len(exercises) != len(solutions):
        raise ValueError(f"{len(exercises)} exercise cells but {len(solutions)} solution cells")
    for exercise, solution in zip(exercises, solutions):
        exercise.source = solution.source
    return notebook


def execute(path: Path, fast: bool, solutions: bool = False) -> nbformat.NotebookNode:
    """Run every cell of the notebook at ``path`` in a fresh kernel, in the lessons
    folder, with ``MINIGAN_LESSON_FAST`` set for fast mode (and with every exercise
    solved, for ``solutions``); returns the executed notebook."""
    notebook = nbformat.read(path, as_version=4)
    if solutions:
        notebook = with_solutions(notebook)
    previous = os.environ.get("MINIGAN_LESSON_FAST")
    os.environ["MINIGAN_LESSON_FAST"] = "1" if fast else "0"  # the kernel inherits it
    try:
        client = NotebookClient(
            notebook,
            timeout=CELL_TIMEOUT,
            kernel_name="python3",
            record_timing=False,  # no timestamps in the stored notebook
            resources={"metadata": {"path": str(path.parent)}},
        )
        client.execute()
    finally:
        if previous is None:
            os.environ.pop("MINIGAN_LESSON_FAST", None)
        else:
            os.environ["MINIGAN_LESSON_FAST"] = previous
    return notebook


def check_verdict(cell) -> str:
    """The verdict line (``minigan.course``'s) that an executed ``check`` cell printed."""
    text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.output_type == "stream")
    marks = (course.PASSED, course.UNSOLVED, course.FAILED)
    lines = [line for line in text.splitlines() if line.startswith(marks)]
    return lines[-1] if lines else "(no verdict printed)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefixes", nargs="*", help="run only lessons whose names start so")
    parser.add_argument("--fast", action="store_true", help="fast mode; write nothing")
    parser.add_argument(
        "--solutions",
        action="store_true",
        help="run each exercise cell as its solution and list the checks' verdicts; write nothing",
    )
    args = parser.parse_args(argv)
    paths = lessons(args.prefixes)
    if not paths:
        print(f"no lesson matches {args.prefixes}", file=sys.stderr)
        return 2
    for path in paths:
        start = time.perf_counter()
        notebook = execute(path, args.fast, args.solutions)
        if not (args.fast or args.solutions):
            nbformat.write(notebook, path)
        mode = "fast" if args.fast else "full"
        mode += ", solutions" if args.solutions else "" if args.fast else ", outputs stored"
        print(f"{path.name}: {time.perf_counter() - start:.0f} s ({mode})", flush=True)
        for cell in tagged(notebook, "check"):
            print("   ", check_verdict(cell))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
