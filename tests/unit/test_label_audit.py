"""Confident learning on given probabilities: per-class thresholds, the confident joint, pruning and ranking."""

from __future__ import annotations

import numpy as np

from modelyard.data.label_audit import audit, calibrate, class_thresholds, confident_joint, contradicts


def noisy_probabilities(rows: int = 300, classes: int = 3, flipped: int = 12, seed: int = 0):
    """A classifier right about the true class (p 0.6-0.9) on every row, and labels with `flipped` rows changed."""
    rng = np.random.default_rng(seed)
    true = rng.integers(classes, size=rows)
    probs = np.full((rows, classes), 0.0)
    top = rng.uniform(0.6, 0.9, size=rows)
    probs[np.arange(rows), true] = top
    for c in range(classes):  # the rest spread over the other classes
        probs[:, c] += np.where(true == c, 0.0, (1 - top) / (classes - 1))
    given = true.copy()
    wrong = rng.choice(rows, size=flipped, replace=False)
    given[wrong] = (true[wrong] + 1 + rng.integers(classes - 1, size=flipped)) % classes
    return given, probs, np.sort(wrong)


def test_thresholds_are_the_mean_probability_of_each_class_on_its_own_rows():
    labels = np.array([0, 0, 1])
    probs = np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]])
    assert np.allclose(class_thresholds(labels, probs), [0.7, 0.8])


def test_the_confident_joint_counts_each_row_under_its_most_probable_confident_class():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.5, 0.5]])  # thresholds: 0.55, 0.6
    joint = confident_joint(labels, probs, class_thresholds(labels, probs))
    assert joint.tolist() == [[1, 1], [0, 1]]  # the last row reaches neither threshold: not counted


def test_the_calibrated_joint_sums_to_one_and_keeps_the_given_label_counts():
    labels = np.array([0, 0, 0, 1])
    q = calibrate(np.array([[1, 1], [0, 1]]), labels)
    assert np.isclose(q.sum(), 1.0)
    assert np.allclose(q.sum(1), [0.75, 0.25])


def test_flipped_rows_are_the_suspects_and_rank_first():
    given, probs, wrong = noisy_probabilities()
    found = audit(given, probs)
    assert set(found.suspects.tolist()) <= set(wrong.tolist())
    # a flipped row whose true class stays under that class's threshold is not confidently anything: not pruned
    assert len(found.suspects) >= 0.8 * len(wrong)
    assert set(found.ranked[: len(wrong)].tolist()) == set(wrong.tolist())
    assert abs(found.noise_rate - len(wrong) / len(given)) < 0.02


def test_the_suggested_label_is_the_most_probable_other_class():
    given, probs, wrong = noisy_probabilities()
    found = audit(given, probs)
    assert (found.suggested[wrong] == probs[wrong].argmax(1)).all()
    assert np.allclose(found.suggested_confidence[wrong], probs[wrong].max(1))


def test_a_row_the_model_predicts_as_its_given_label_is_never_a_suspect():
    given, probs, _ = noisy_probabilities(flipped=30)
    found = audit(given, probs)
    assert (probs[found.suspects].argmax(1) != given[found.suspects]).all()


def test_clean_labels_give_no_suspects():
    given, probs, _ = noisy_probabilities(flipped=0)
    assert len(audit(given, probs).suspects) == 0


def test_contradicts_needs_a_confident_other_class_and_a_doubted_given_label():
    thresholds = np.array([0.7, 0.7])
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.1, 0.9]])
    assert contradicts(np.array([1, 1, 1]), probs, thresholds).tolist() == [True, False, False]
