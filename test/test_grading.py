"""Self-grading core (ssl_robot.grading) against hand-computed AUCs."""
from __future__ import annotations

import numpy as np
import pytest

from ssl_robot.diagnostics import OK, WARN
from ssl_robot.grading import PerceptionGrader


def _frame(p: list[float]) -> np.ndarray:
    return np.asarray(p, np.float64).reshape(2, 1)  # 2 distances x 1 sensor


def test_labels_arriving_later_grade_the_prediction_of_their_frame():
    grader = PerceptionGrader(min_samples=4, floor_auc=0.6, match_tolerance_ns=1000)
    grader.predicted(1_000_000, 'm1', _frame([0.9, 0.2]))
    grader.predicted(2_000_000, 'm1', _frame([0.4, 0.6]))
    grader.predicted(3_000_000, 'm1', _frame([0.1, 0.7]))
    # Labels for frames 1 and 2 (stamp 2 off by 500 ns: within the tolerance); the second
    # distance of frame 2 unknown. Cells: (0.9, 1), (0.2, 0), (0.4, 0); pairs (+, -):
    # 0.9 > 0.2, 0.9 > 0.4 -> AUC 1.
    assert grader.labelled(1_000_000, _frame([1, 0]), _frame([1, 1]) > 0) == 'm1'
    assert grader.labelled(2_000_500, _frame([0, 1]), np.array([[True], [False]])) == 'm1'
    assert grader.labelled(9_000_000, _frame([1, 1]), _frame([1, 1]) > 0) is None
    grade = grader.grade('m1')
    assert (grade.auc, grade.samples, grade.frames) == (1.0, 3, 2)
    assert grade.per_distance[0] == (1.0, 2)  # distance 0: (0.9, 1), (0.4, 0)
    assert np.isnan(grade.per_distance[1][0]) and grade.per_distance[1][1] == 1
    assert grade.level == OK and 'too few' in grade.message
    # Frame 3: (0.1, 1), (0.7, 0). Positives 0.9, 0.1; negatives 0.2, 0.4, 0.7:
    # 0.9 beats all 3, 0.1 beats none -> 3 / 6.
    grader.labelled(3_000_000, _frame([1, 0]), _frame([1, 1]) > 0)
    grade = grader.grade('m1')
    assert grade.auc == pytest.approx(0.5) and grade.samples == 5
    assert grade.level == WARN and 'below the floor 0.6' in grade.message
    assert (grader.labels_matched, grader.labels_unmatched) == (3, 1)


def test_a_swap_never_mixes_two_models_and_the_window_rolls():
    grader = PerceptionGrader(window_frames=2, min_samples=1)
    grader.predicted(1, 'old', _frame([0.9, 0.1]))
    grader.predicted(2, 'new', _frame([0.1, 0.9]))  # the new model is wrong
    grader.labelled(1, _frame([1, 0]), _frame([1, 1]) > 0)
    grader.labelled(2, _frame([1, 0]), _frame([1, 1]) > 0)
    assert grader.grade('old').auc == 1.0 and grader.grade('new').auc == 0.0
    for stamp in (3, 4):  # two good frames push the bad one out of new's window
        grader.predicted(stamp, 'new', _frame([0.8, 0.3]))
        grader.labelled(stamp, _frame([1, 0]), _frame([1, 1]) > 0)
    assert grader.grade('new').auc == 1.0 and grader.grade('new').frames == 2
    assert grader.grade('unknown').message == 'no labelled frames yet'


def test_one_class_only_has_no_auc_and_predictions_are_bounded():
    grader = PerceptionGrader(keep_predictions=3, match_tolerance_ns=0)
    for stamp in range(5):
        grader.predicted(stamp, 'm', _frame([0.5, 0.5]))
    assert grader.labelled(0, _frame([0, 0]), _frame([1, 1]) > 0) is None  # forgotten
    assert grader.labelled(4, _frame([0, 0]), _frame([1, 1]) > 0) == 'm'
    grade = grader.grade('m')
    assert np.isnan(grade.auc) and 'one class only' in grade.message
