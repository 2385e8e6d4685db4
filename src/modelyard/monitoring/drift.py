"""Drift of a window of live inputs and predictions against a bundle's reference profile.

Four tests, each with its statistic, threshold and verdict (docs/monitoring.md): PSI on input lengths, PSI on
embedding-cluster assignments, a kernel two-sample test (MMD) on embeddings, and PSI on predicted labels; table
rows get PSI per feature and the characteristic stability index instead of the text tests, images the embedding
tests without lengths. `detected` is true when any of them is, None when none could run; too small a window
gives no verdict rather than a noisy one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelyard.drift.reference import MMD_ROWS, Reference, assign, normalize
from modelyard.drift.statistics import bin_counts, mmd_test, psi_test

MIN_WINDOW = 30  # fewer live inputs than this: no verdict
EMBED_ROWS = 512  # most recent inputs embedded per check (cluster PSI); MMD uses MMD_ROWS of them
FILE_ROWS = 128  # most recent files (images) decoded and embedded per check; the server runs it on its model thread


def _texts(inputs: list[Any]) -> list[str]:
    return [x for x in inputs if isinstance(x, str)]


def _embedding_tests(reference: Reference, learner: Any, inputs: list[Any]) -> dict[str, Any]:
    """Cluster-share PSI and the MMD test of the learner's embeddings of `inputs` against the reference's."""
    if reference.embeddings is None or reference.centroids is None:
        reason = reference.profile.get("embeddings", {}).get("skipped", "the reference has no embeddings")
        return {"embedding_clusters": {"skipped": reason}, "embedding_mmd": {"skipped": reason}}
    if not hasattr(learner, "embed"):
        reason = "the served learner has no embed()"
        return {"embedding_clusters": {"skipped": reason}, "embedding_mmd": {"skipped": reason}}
    recent = inputs[-EMBED_ROWS:]
    live = normalize(learner.embed(recent))
    centroids = reference.centroids
    ref_counts = np.asarray(reference.profile["embeddings"]["cluster_counts"], dtype=float)
    live_counts = np.bincount(assign(live, centroids), minlength=len(centroids)).astype(float)
    clusters = psi_test(ref_counts, live_counts, "psi_embedding_clusters").as_dict()
    rng = np.random.default_rng(0)
    sample = live[rng.permutation(len(live))[:MMD_ROWS]]
    mmd = mmd_test(reference.embeddings, sample).as_dict()
    return {"embedding_clusters": clusters, "embedding_mmd": mmd}


def _label_test(reference: Reference, predicted: list[str]) -> dict[str, Any]:
    counts = reference.profile.get("predicted", {}).get("counts")
    if not counts:
        return {"skipped": "the reference has no predicted-label distribution"}
    if not predicted:
        return {"skipped": "the logged answers carry no label"}
    labels = list(counts)
    index = {label: i for i, label in enumerate(labels)}
    live = np.zeros(len(labels) + 1)  # last bin: labels the reference never predicted
    for label in predicted:
        live[index.get(str(label), len(labels))] += 1
    ref = np.asarray([*counts.values(), 0], dtype=float)
    if live[-1] == 0:
        live, ref = live[:-1], ref[:-1]
    return psi_test(ref, live, "psi_predicted_labels").as_dict()


def _feature_tests(reference: Reference, learner: Any, inputs: list[Any]) -> dict[str, Any]:
    """Table rows: PSI per feature and the characteristic stability index, flagged when any feature drifts."""
    rows = [x for x in inputs if isinstance(x, dict)]
    if len(rows) < MIN_WINDOW or not hasattr(learner, "feature_drift"):
        return {"skipped": _missing_inputs(inputs, "table rows")}
    per_feature = learner.feature_drift(reference.profile, rows)
    drifted = sorted(name for name, test in per_feature.items() if test["detected"])
    return {"detected": bool(drifted), "drifted": drifted, "method": "psi per feature, csi", "per_feature": per_feature}


def _missing_inputs(inputs: list[Any], wanted: str) -> str:
    """Why too few inputs of the kind the reference profiles (`table rows` or `text inputs`) were found: none
    logged, or inputs of the other kind (a model of another task answered this traffic under the same name)."""
    tables = wanted == "table rows"
    other = sum(isinstance(x, str if tables else dict) for x in inputs)
    if other < MIN_WINDOW:
        return f"no {wanted} logged (server ran with --no-log-inputs?)"
    return (
        f"the logged inputs are {'texts' if tables else 'table rows'}, not {wanted}: a model of another task answered"
    )


def _decoded_files(learner: Any, inputs: list[Any]) -> list[Any]:
    """The most recent FILE_ROWS logged inputs the learner can decode (an image as the client sent it, base64),
    oldest first; inputs that are not such files (not logged, or another task's) are left out."""
    decoded = []
    for item in reversed(inputs):
        if len(decoded) == FILE_ROWS:
            break
        try:
            decoded.append(learner.parse_input(item))
        except ValueError:
            continue
    return decoded[::-1]


def _file_tests(reference: Reference, learner: Any, inputs: list[Any]) -> dict[str, Any]:
    """A classifier of files (images): the embedding tests on the logged inputs it can decode."""
    files = _decoded_files(learner, inputs) if hasattr(learner, "parse_input") else []
    if len(files) >= MIN_WINDOW:
        return _embedding_tests(reference, learner, files)
    logged = sum(x is not None for x in inputs)
    if logged < MIN_WINDOW:
        why = f"{logged} of the {len(inputs)} inputs were logged, under {MIN_WINDOW} (server ran with --no-log-inputs?)"
    else:
        why = f"only {len(files)} of the {logged} logged inputs are files this model can decode: another model answered"
    return {"embedding_clusters": {"skipped": why}, "embedding_mmd": {"skipped": why}}


def _input_tests(reference: Reference, learner: Any, inputs: list[Any]) -> dict[str, Any]:
    """The tests of the inputs the reference profiles: table features, text lengths and embeddings, or file
    embeddings; one skipped entry when it profiles none."""
    profile = reference.profile
    if "features" in profile:
        return {"features": _feature_tests(reference, learner, inputs)}
    if profile.get("inputs", {}).get("kind") == "files":
        return _file_tests(reference, learner, inputs)
    lengths = profile.get("lengths")
    if lengths is None:
        return {"inputs": {"skipped": profile.get("inputs", {}).get("skipped", "the reference profiles no inputs")}}
    texts = _texts(inputs)
    if len(texts) < MIN_WINDOW:
        why = _missing_inputs(inputs, "text inputs")
        return {name: {"skipped": why} for name in ("input_length", "embedding_clusters", "embedding_mmd")}
    live = bin_counts(np.array([len(t) for t in texts]), lengths["edges"])
    length = psi_test(np.asarray(lengths["counts"]), live, "psi_input_length").as_dict()
    return {"input_length": length, **_embedding_tests(reference, learner, texts)}


def _not_judged(tests: dict[str, Any]) -> str:
    """Why no test ran: each distinct reason once, with the tests it stopped."""
    stopped: dict[str, list[str]] = {}
    for name, test in tests.items():
        stopped.setdefault(test["skipped"], []).append(name)
    return "no drift test could run (" + "; ".join(f"{', '.join(n)}: {why}" for why, n in stopped.items()) + ")"


def drift(reference: Reference, learner: Any, inputs: list[Any], predicted: list[str]) -> dict[str, Any]:
    """The drift section of `modelyard monitor`: one entry per test plus the overall `detected` verdict, which is
    None (not judged) when no test could run: no test firing is not the same as no drift."""
    if not reference.profile:
        return {"detected": None, "reason": "; ".join(reference.notes) or "no reference profile"}
    if len(inputs) < MIN_WINDOW:
        return {
            "detected": None,
            "reason": f"only {len(inputs)} predictions in the window; drift needs at least {MIN_WINDOW}",
        }
    tests = {**_input_tests(reference, learner, inputs), "predicted_labels": _label_test(reference, predicted)}
    if all("skipped" in test for test in tests.values()):
        return {"detected": None, "reason": _not_judged(tests), **tests}
    flagged = [name for name, test in tests.items() if test.get("detected")]
    return {
        "detected": bool(flagged),
        "reason": f"drift in {', '.join(flagged)}" if flagged else "no test exceeds its threshold",
        **tests,
    }
