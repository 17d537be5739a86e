"""Execute the lesson notebooks through a real Jupyter kernel.

    python lessons/run.py               # every lesson in full mode; outputs stored in place
    python lessons/run.py 05 06         # only the lessons whose names start with 05, 06
    python lessons/run.py --fast        # MINIGAN_LESSON_FAST=1: small data, few steps, and
                                        # nothing written (what the tests run in CI)

Full mode is how the stored outputs are made: run it after changing a lesson, then
commit the notebook. A cell that raises stops the run with the cell's traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
CELL_TIMEOUT = 1200  # seconds; the longest cell is a full-mode training run


def lessons(prefixes=()) -> list[Path]:
    """The numbered lesson notebooks, in order (those starting with any of ``prefixes``)."""
    paths = sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
    return [p for p in paths if not prefixes or p.name.startswith(tuple(prefixes))]


def execute(path: Path, fast: bool) -> nbformat.NotebookNode:
    """Run every cell of the notebook at ``path`` in a fresh kernel, in the lessons
    folder, with ``MINIGAN_LESSON_FAST`` set for fast mode; returns the executed notebook."""
    notebook = nbformat.read(path, as_version=4)
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefixes", nargs="*", help="run only lessons whose names start so")
    parser.add_argument("--fast", action="store_true", help="fast mode; write nothing")
    args = parser.parse_args(argv)
    paths = lessons(args.prefixes)
    if not paths:
        print(f"no lesson matches {args.prefixes}", file=sys.stderr)
        return 2
    for path in paths:
        start = time.perf_counter()
        notebook = execute(path, args.fast)
        if not args.fast:
            nbformat.write(notebook, path)
        mode = "fast" if args.fast else "full, outputs stored"
        print(f"{path.name}: {time.perf_counter() - start:.0f} s ({mode})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
