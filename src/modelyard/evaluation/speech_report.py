"""Report sections for speech recognisers: error rates beside the zero-shot baseline, the worst test utterances
with reference and hypothesis aligned word by word, and the most frequent confusions."""

from __future__ import annotations

from collections import Counter
from typing import Any

from markupsafe import Markup, escape

from modelyard.evaluation.sections import Html, ReportContext, Section, Table, Text, fmt, provides
from modelyard.metrics import intervals
from modelyard.metrics.speech import Scored, score

WORST = 25
CONFUSIONS = 15
STYLE = {
    "substitute": ("background:#fee2e2;text-decoration:line-through", "background:#dcfce7"),
    "delete": ("background:#fee2e2;text-decoration:line-through", ""),
    "insert": ("", "background:#dcfce7"),
}


def _aligned(scored: Scored) -> Markup:
    """Reference over hypothesis, one column per alignment span: struck red what was missed or replaced, green
    what the model wrote instead."""
    cells_ref, cells_hyp = [], []
    for kind, ref, hyp in scored.ops:
        ref_style, hyp_style = STYLE.get(kind, ("", ""))
        cells_ref.append(f'<td style="{ref_style}">{escape(ref) or "&nbsp;"}</td>')
        cells_hyp.append(f'<td style="{hyp_style}">{escape(hyp) or "&nbsp;"}</td>')
    return Markup(
        '<table class="alignment"><tr><th>ref</th>'
        + "".join(cells_ref)
        + "</tr><tr><th>hyp</th>"
        + "".join(cells_hyp)
        + "</tr></table>"
    )


def _metrics_rows(metrics: dict[str, Any]) -> list[list[str]]:
    rows = []
    for split in ("validation", "test"):
        m = metrics.get(split) or {}
        if m:
            rows.append(["this model", split, fmt(m.get("wer")), fmt(m.get("cer")), fmt(m.get("rtf"))])
    for name, baseline in (metrics.get("baselines") or {}).items():
        for split in ("validation", "test"):
            m = baseline.get(split) if isinstance(baseline, dict) else None
            if m:
                rows.append([f"{name} (zero-shot)", split, fmt(m.get("wer")), fmt(m.get("cer")), fmt(m.get("rtf"))])
    return rows


def _is_transcriber(model: Any) -> bool:
    from modelyard.learners.speech_common import Transcriber

    return isinstance(model.learner, Transcriber)


@provides("speech", _is_transcriber, exclusive=True)
def speech_sections(context: ReportContext) -> list[Section]:
    learner = context.model.learner
    test = context.prepared.splits["test"]
    blocks: list[Any] = [
        Table(
            ["model", "split", "WER", "CER", "real-time factor"],
            _metrics_rows(context.metrics),
            "lower is better; punctuation and case ignored; WER also reads numbers as digits (seven = 7), CER does not",
        )
    ]
    voices = ((context.metrics.get("test") or {}).get("per_speaker")) or {}
    if voices:
        rows = [[name, fmt(m["wer"]), fmt(m["cer"]), m["utterances"]] for name, m in voices.items()]
        blocks.append(Table(["speaker", "WER", "CER", "utterances"], rows, "test, per speaker, worst first"))
    if not len(test):
        return [Section("speech", "Transcription quality", [*blocks, Text("no test split", tone="note")])]
    found = intervals.speech_intervals(learner, test)
    if found is not None:
        context.intervals.update(found[0])
        context.interval_method = found[1]
    references, hypotheses, _, _ = learner.transcripts(test)
    scored = [score(r, h) for r, h in zip(references, hypotheses, strict=True)]
    files = list(test["file"])
    context.sample_inputs = list(test["path"][:1])
    order = sorted(range(len(scored)), key=lambda i: (-scored[i].word_errors / max(scored[i].words, 1), i))
    worst = [i for i in order if scored[i].word_errors][:WORST]
    errors = [
        Section(
            "speech-errors",
            "Per-utterance errors",
            [
                Html(
                    Markup("").join(
                        Markup(
                            f"<p><b>{escape(files[i])}</b> ({scored[i].word_errors} errors in "
                            f"{scored[i].words} words)</p>"
                        )
                        + _aligned(scored[i])
                        for i in worst
                    )
                )
            ]
            if worst
            else [Text("every test utterance was transcribed without a word error", tone="note")],
            f"the {len(worst)} test utterances with the highest word error rate, reference above hypothesis",
        )
    ]
    confusions = Counter((kind, ref, hyp) for s in scored for kind, ref, hyp in s.ops if kind != "equal").most_common(
        CONFUSIONS
    )
    if confusions:
        rows = [[kind, ref or "—", hyp or "—", count] for (kind, ref, hyp), count in confusions]
        blocks.append(Table(["error", "reference", "hypothesis", "count"], rows, "most frequent errors on test"))
    return [Section("speech", "Transcription quality", blocks, "word and character error rates"), *errors]
