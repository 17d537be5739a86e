"""minigan.course: the exercise checks print one verdict line and never raise."""

import numpy as np
import pytest

from minigan import course


def _verdict(capsys, body):
    with course.check("thing"):
        body()
    return capsys.readouterr().out


def test_a_passing_check_says_correct_and_how_close(capsys):
    out = _verdict(capsys, lambda: course.assert_close(np.ones(3), np.ones(3) + 1e-12, "dx"))
    assert "dx: relative error" in out
    assert out.splitlines()[-1].startswith(course.PASSED + " thing")


def test_a_stub_is_reported_as_not_written_yet(capsys):
    def stub():
        raise NotImplementedError

    out = _verdict(capsys, stub)
    assert out.startswith(course.UNSOLVED) and "hidden in the next cell" in out


@pytest.mark.parametrize(
    "yours, reason",
    [
        (np.ones(3) * 1.1, "relative error 4.8e-02"),
        (np.ones(4), "has shape (4,); expected (3,)"),
        (np.array([1.0, np.nan, 1.0]), "relative error nan"),
    ],
)
def test_a_wrong_answer_says_why(capsys, yours, reason):
    out = _verdict(capsys, lambda: course.assert_close(yours, np.ones(3), "dx"))
    assert out.startswith(course.FAILED) and reason in out, out


def test_a_crash_in_the_learners_code_names_the_error(capsys):
    def crashes():
        return [][1]

    out = _verdict(capsys, crashes)
    assert out.startswith(course.FAILED) and "IndexError" in out and "crashes" in out


def test_relative_error_of_zeros_is_zero():
    assert course.relative_error(np.zeros(2), np.zeros(2)) == 0.0
