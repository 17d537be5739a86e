"""The lessons' exercise checks: a verdict in one line, and never a stopped "Run All".

Every exercise in ``lessons/`` is three code cells, found by their cell tags:

- ``exercise``: the learner's stub, a signature and a docstring with shapes, with
  ``raise NotImplementedError`` where the work goes;
- ``check``: runs the learner's code against an independent answer inside
  ``with course.check("name"):`` and says how close it came;
- ``solution``: a worked solution, hidden (JupyterLab's ``source_hidden``), which the
  same check accepts; it runs after the check, so the rest of the lesson works whether
  or not the learner solved the exercise.

A check cell::

    with course.check("conv2d_backward"):
        dx, dw = conv2d_backward(dout, cache)                   # the learner's code
        course.assert_close(dx, dx_expected, "dx", tolerance=1e-8)

The check prints one of three verdicts, each starting with a marker the tests read:
``PASSED`` (with what was compared), ``UNSOLVED`` (the stub still raises
NotImplementedError) or ``FAILED`` (a wrong answer or an error in the learner's code,
with the reason). None of them raises, so "Run All" always reaches the end.
"""

from __future__ import annotations

import traceback
from contextlib import contextmanager

import numpy as np

PASSED = "✓"
UNSOLVED = "…"
FAILED = "✗"


@contextmanager
def check(name: str):
    """Run an exercise's check and print its verdict in one line (see the module's doc)."""
    try:
        yield
    except NotImplementedError:
        print(
            f"{UNSOLVED} {name}: not written yet. Fill in the exercise cell above, run it, "
            f"then run this cell again. A worked solution is hidden in the next cell "
            f"(click the '...' to show it)."
        )
    except AssertionError as error:
        print(f"{FAILED} {name}: not right yet. {error}")
    except Exception as error:  # the learner's code crashed: say where, do not stop Run All
        frames = traceback.extract_tb(error.__traceback__)
        where = f" (line {frames[-1].lineno} of {frames[-1].name})" if frames else ""
        print(f"{FAILED} {name}: your code raised {type(error).__name__}{where}: {error}")
    else:
        print(f"{PASSED} {name}: correct!")


def relative_error(yours, expected) -> float:
    """``max |yours - expected| / max(|yours| + |expected|)``, CS231n's measure (0 when both
    are zero). Arrays of any backend; compared on the host in float64."""
    yours, expected = _host(yours), _host(expected)
    scale = np.max(np.abs(yours) + np.abs(expected), initial=0.0)
    return 0.0 if scale == 0 else float(np.max(np.abs(yours - expected)) / scale)


def assert_close(yours, expected, what: str, tolerance: float = 1e-7) -> float:
    """Check that ``yours`` has ``expected``'s shape and lies within ``tolerance`` of it
    (relative error, above). Prints the error on success, so the learner sees how close
    a correct answer comes; raises AssertionError with the reason otherwise."""
    yours_shape, expected_shape = np.shape(_host(yours)), np.shape(_host(expected))
    if yours_shape != expected_shape:
        raise AssertionError(f"{what} has shape {yours_shape}; expected {expected_shape}.")
    error = relative_error(yours, expected)
    if not error <= tolerance:  # also catches NaN
        raise AssertionError(
            f"{what}: relative error {error:.1e}, where a correct answer gives below "
            f"{tolerance:.0e}."
        )
    print(f"  {what}: relative error {error:.1e} (a correct answer: below {tolerance:.0e})")
    return error


def _host(a) -> np.ndarray:
    if hasattr(a, "get") and not isinstance(a, np.ndarray):  # a CuPy array
        a = a.get()
    return np.asarray(a, dtype=np.float64)
