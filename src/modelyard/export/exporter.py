"""`modelyard export`: a bundle -> ONNX (optionally int8) or int8 PyTorch, checked against the original.

The result is itself a bundle (same manifest, its own checksums, `runtime` saying what runs it), so predict,
evaluate, report, serve and the registry take it unchanged. It is built beside its destination and moved into
place only once the parity check has passed (or `force` is set), with the check in `export.json`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from modelyard import bundle, loader
from modelyard.data.splits import changed_splits
from modelyard.errors import DataError, UserError
from modelyard.evaluation.model_card import write_model_card
from modelyard.export import parity
from modelyard.export.onnx import quantize_onnx, to_onnx
from modelyard.fsutil import atomic_write_json, replace_dir, sha256_file
from modelyard.home import home
from modelyard.metrics.intervals import intervals_for
from modelyard.runtimes.protocol import ONNX_FILE
from modelyard.runtimes.torch_int8 import quantize_module, save_quantized

WEIGHTS = "model.safetensors"
REPORT = "export.json"
CALIBRATION_SAMPLES = 64  # training inputs that fix the activation ranges of static int8 (CNNs)
NOT_COPIED = {bundle.MANIFEST, WEIGHTS, REPORT, "distill.json", "checkpoints"}
# manifest entries that describe the written files, not the model: write_bundle recomputes them
REWRITTEN = ("files", "created", "versions", "format_version", "runtime", "export", "quantize")


class ExportParityError(UserError):
    """The exported model answers too differently from the original."""


@dataclass
class ExportResult:
    path: Path
    report: dict[str, Any]
    passed: bool


def default_output(model: loader.Model, suffix: str) -> Path:
    """Beside the source bundle; under MODELYARD_HOME for registry models (their folder belongs to MLflow)."""
    if model.version is None:
        return model.path.with_name(f"{model.path.name}-{suffix}")
    return home() / "exports" / model.name / f"{datetime.now():%Y%m%d-%H%M%S}-{suffix}"


def derived_from(manifest: dict[str, Any]) -> str | None:
    """The source bundle path an export or distillation was made from; None for a bundle `train` wrote."""
    source = (manifest.get("export") or {}).get("source") or manifest.get("distilled_from") or {}
    return source.get("path")


def refuse_unrelated_output(output: Path, source: Path) -> None:
    """Only an earlier export or distillation of `source` may be replaced: any other folder, a trained (perhaps
    registered) bundle above all, is the user's and stays untouched."""
    if not output.exists():
        return
    hint = "choose another --output folder, or delete it first if it is no longer needed"
    if not (output / bundle.MANIFEST).is_file():
        raise UserError(f"--output {output} exists and is not a bundle; not replacing it", hint)
    manifest = bundle.read_manifest(output)
    if derived_from(manifest) == str(source):
        return
    made = f"made from {derived_from(manifest)}" if derived_from(manifest) else "trained by `modelyard train`"
    raise UserError(
        f"--output {output} holds another bundle ({manifest.get('name')}: {manifest.get('task')}, "
        f"{manifest.get('backbone')}, {made}), not an earlier export or distillation of {source}; not replacing it",
        hint,
    )


def refuse_changed_data(model: loader.Model, fingerprints: dict[str, Any]) -> None:
    """A parity check (or a student's soft labels) on rows other than those the model was trained and scored on
    would measure nothing the bundle's numbers speak for, so changed data is refused, as a retrain's gate does."""
    changed = changed_splits(model.manifest.get("data", {}), fingerprints)
    if not changed:
        return
    data = model.config.data
    train = getattr(data, "train", None)
    where = ", ".join(f"{s} ({getattr(data, s, None) or f'carved from {train}'})" for s in changed)
    raise DataError(
        f"{model.path}: the data changed since this model was trained (the sha256 fingerprint in its manifest no "
        f"longer matches the split now read): {where}",
        "restore the data it was trained on, or train it again on the data as it is now and use that bundle",
    )


# Backbones whose graph the TorchScript exporter cannot trace faithfully, with what to do instead
NO_ONNX = {
    "scratch-transformer": "nn.MultiheadAttention traces with the example's sequence length fixed; "
    "export it as int8 PyTorch instead: --format torch --quantize int8",
}


def _other_backbones(model: loader.Model) -> str:
    """The hint's "(other TASK backbones may)", left out when the task allows one backbone only (a recommender's)
    or says none of its backbones exports (`exports = False`: image+text classifiers, assistants)."""
    if not getattr(model.task, "exports", True):
        return ""
    field = type(model.config.model).model_fields.get("backbone")
    choices = get_args(field.annotation) if field is not None and get_origin(field.annotation) is Literal else None
    return "" if choices is not None and len(choices) < 2 else f" (other {model.config.task} backbones may)"


def _check_capable(model: loader.Model, fmt: str) -> None:
    learner = model.learner
    backbone = model.manifest.get("backbone")
    if fmt == "onnx" and backbone in NO_ONNX:
        raise UserError(f"{model.path}: a {backbone} model has no faithful ONNX export", NO_ONNX[backbone])
    able = parity.can_compare(learner) and (
        (hasattr(learner, "onnx_graph") or hasattr(learner, "write_onnx"))
        if fmt == "onnx"
        else getattr(learner, "module", None) is not None
    )
    exported = model.manifest.get("runtime", "torch") != "torch" or model.manifest.get("quantize")
    if not able or exported:
        what = "ONNX" if fmt == "onnx" else "int8 PyTorch"
        raise UserError(
            f"{model.path}: this model ({model.manifest.get('backbone')}, runtime "
            f"{model.manifest.get('runtime', 'torch')}) cannot be exported to {what}",
            "export the bundle `modelyard train` wrote, not an exported copy"
            if exported
            else f"{backbone} models have no {what} export{_other_backbones(model)}: serve the bundle itself "
            "(`modelyard serve`)",
        )


def _copy_preprocessing(source: Path, staging: Path) -> None:
    """Everything of the source bundle but its weights and manifest: config, tokenizer, metrics, history."""
    for path in source.iterdir():
        if path.name in NOT_COPIED:
            continue
        if path.is_dir():
            shutil.copytree(path, staging / path.name)
        else:
            shutil.copy2(path, staging / path.name)


def _write_weights(
    model: loader.Model, fmt: str, quantize: str | None, staging: Path, splits: dict[str, Any]
) -> dict[str, Any]:
    learner = model.learner
    if fmt == "torch":
        save_quantized(quantize_module(learner.module).eval(), staging / WEIGHTS)
        return {"runtime": "torch", "quantize": "dynamic-int8"}
    if hasattr(learner, "write_onnx"):  # not one torch graph (e.g. gradient-boosted trees): the learner writes it
        if quantize is not None:
            raise UserError("int8 quantization is not offered for this model", "export it without --quantize")
        learner.write_onnx(staging)
        return {"runtime": "onnxruntime"}
    graph = learner.onnx_graph()
    if quantize is None:
        to_onnx(graph, staging / ONNX_FILE)
        return {"runtime": "onnxruntime"}
    calibration = None
    if graph.quantization == "static":
        calibration = learner.calibration_feeds(splits["train"], CALIBRATION_SAMPLES)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / ONNX_FILE
        to_onnx(graph, fp32)
        quantize_onnx(fp32, staging / ONNX_FILE, graph.quantization, calibration, graph.fp32_nodes)
    return {"runtime": "onnxruntime", "quantize": f"{graph.quantization}-int8"}


def _measure(folder: Path, learner: Any, splits: dict[str, Any], manifest: dict[str, Any]) -> None:
    """Score the export itself on the validation and test splits into its metrics.json (the source's numbers kept
    under `exported_from`) and write its model card again, so card, report and registry describe the model served
    rather than the one it was exported from."""
    path = folder / "metrics.json"
    metrics = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    source = {k: metrics.pop(k) for k in ("validation", "test", "test_intervals") if k in metrics}
    for split in ("validation", "test"):
        metrics[split] = learner.evaluate(splits[split]) if len(splits[split]) else {}
    found = intervals_for(learner, splits["test"])
    if found is not None:  # classifiers' intervals are rebuilt from the confusion matrix instead
        metrics["test_intervals"] = {"method": found[1], **found[0]}
    metrics["exported_from"] = {"path": manifest["export"]["source"]["path"], **source}
    atomic_write_json(path, metrics)
    write_model_card(folder, manifest)


def _reference_in_fp32(model: loader.Model) -> str:
    """Make the original compute in fp32, as every export does (int8 kernels take fp32 activations too), and
    return the precision it was trained in: against a bf16 reference, bf16's own rounding would count as the
    export's error and fail exports that are exact to 1e-6. The trained precision is read from metrics.json, which
    training writes for every learner; a learner keeps a `precision` only where it computes in one."""
    path = model.path / "metrics.json"
    metrics = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if getattr(model.learner, "precision", "fp32") != "fp32":
        model.learner.precision = "fp32"
    return metrics.get("train", {}).get("precision", "fp32")


def export(
    ref: str | Path,
    fmt: Literal["onnx", "torch"] = "onnx",
    quantize: Literal["int8"] | None = None,
    output: str | Path | None = None,
    tolerance: parity.Tolerance = parity.Tolerance(),
    force: bool = False,
    latency_samples: int = 100,
) -> ExportResult:
    """Export, run the parity check on the validation split, move the new bundle into place if it passes."""
    if fmt == "torch" and quantize is None:
        raise UserError("a PyTorch export without --quantize changes nothing", "add --quantize int8 or --format onnx")
    original = loader.load(ref)
    _check_capable(original, fmt)
    suffix = "-".join(x for x in ("onnx" if fmt == "onnx" else "", quantize or "") if x)
    output = Path(output).resolve() if output else default_output(original, suffix)
    bundle.refuse_output_over(output, original.path, "bundle being exported")
    refuse_unrelated_output(output, original.path)
    staging = output.parent / f".{output.name}.export-{uuid.uuid4().hex[:8]}"
    prepared = original.task.prepare(original.config)  # re-prepared from the config exactly as in training
    refuse_changed_data(original, prepared.fingerprints)
    splits = prepared.splits
    try:
        manifest = {k: v for k, v in original.manifest.items() if k not in REWRITTEN}

        def write(folder: Path) -> dict[str, Any]:
            _copy_preprocessing(original.path, folder)
            written = _write_weights(original, fmt, quantize, folder, splits)
            source = {
                "path": str(original.path),
                "version": original.version,
                "manifest_sha256": sha256_file(original.path / bundle.MANIFEST),
            }
            return {**written, "export": {"format": fmt, "quantize": quantize, "source": source}}

        bundle.write_bundle(staging, write, manifest)
        exported = loader.load(staging)
        trained_in = _reference_in_fp32(original)
        report = {
            "format": fmt,
            "quantize": exported.manifest.get("quantize"),
            "runtime": exported.manifest["runtime"],
            "size_mb": {"original": parity.size_mb(original.path), "exported": parity.size_mb(staging)},
            "reference_precision": {"trained": trained_in, "compared": "fp32"},
            **parity.compare(
                original.learner,
                exported.learner,
                parity.checked_split(splits, original.learner),
                latency_samples=latency_samples,
            ),
        }
        found = parity.problems(report, tolerance)
        report["passed"] = not found
        report["tolerance"] = {
            "min_agreement": tolerance.min_agreement,
            "max_accuracy_drop": tolerance.max_accuracy_drop,
            "max_error_increase": tolerance.max_error_increase,
            "forced": bool(found and force),
        }
        if found and not force:
            raise ExportParityError(
                f"the export of {original.path} changes predictions too much: " + "; ".join(found),
                "nothing was written; pass --force to keep it anyway"
                + (", or export without --quantize" if quantize else ""),
            )
        _measure(staging, exported.learner, splits, exported.manifest)
        atomic_write_json(staging / REPORT, report)
        bundle.seal(staging, exported.manifest)
        replace_dir(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(output, report, not found)
