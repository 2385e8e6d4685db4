"""`modelyard index` on real documents with the real MiniLM encoder: hybrid search finds the right passage,
updates re-embed only what changed, and bad input fails with one clear message."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from retrieval_helpers import write_docs, write_encrypted_pdf, write_pdf

from modelyard.retrieval.encoder import TextEmbedder
from modelyard.retrieval.index import Index, build

CLI = [sys.executable, "-m", "modelyard"]
SLICE = Path(__file__).resolve().parents[2] / "examples" / "data" / "squad_retrieval"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600)


@pytest.fixture
def docs(tmp_path) -> Path:
    return write_docs(tmp_path / "docs")


def test_hybrid_search_cites_the_file_and_section_that_answers(docs, tmp_path):
    report = build(docs, tmp_path / "index")
    assert report.added == ["garden.md", "notes.txt", "report.pdf", "trains.html"] and report.chunks >= 6
    index = Index.load(tmp_path / "index")
    [[best, *_]] = index.search(["how often should I water tomatoes"], k=3, mode="hybrid")
    assert (best.file, best.section) == ("garden.md", "Garden guide > Watering")
    [[pdf]] = index.search(["coffee roasting"], k=1, mode="dense")
    assert (pdf.file, pdf.section) == ("report.pdf", "page 2")
    [[html]] = index.search(["track gauge millimetres"], k=1, mode="bm25")
    assert (html.file, html.section) == ("trains.html", "Railways > Gauges")


def test_an_update_re_embeds_only_the_changed_file_and_drops_a_deleted_one(docs, tmp_path):
    build(docs, tmp_path / "index")
    before = Index.load(tmp_path / "index")
    kept = {i: before.vectors.reconstruct(i) for i, row in enumerate(before.rows) if row["file"] == "garden.md"}
    (docs / "notes.txt").write_text("Glaciers carve U-shaped valleys as they slowly move downhill.\n")
    (docs / "trains.html").unlink()
    report = build(docs, tmp_path / "index")
    assert report.changed == ["notes.txt"] and report.removed == ["trains.html"] and report.unchanged == 2
    assert report.embedded_chunks == 1 and report.added == []
    after = Index.load(tmp_path / "index")
    assert {row["file"] for row in after.rows} == {"garden.md", "notes.txt", "report.pdf"}
    reused = [after.vectors.reconstruct(i) for i, row in enumerate(after.rows) if row["file"] == "garden.md"]
    np.testing.assert_array_equal(np.stack(reused), np.stack(list(kept.values())))
    [[hit]] = after.search(["what shapes valleys"], k=1)
    assert hit.file == "notes.txt" and "Glaciers" in hit.text
    assert build(docs, tmp_path / "index").embedded_chunks == 0  # nothing changed: nothing embedded
    rechunked = build(docs, tmp_path / "index", chunk_size=30, overlap=5)  # new chunking: everything again
    assert rechunked.rebuilt and rechunked.unchanged == 3 and rechunked.embedded_chunks == rechunked.chunks


def test_bf16_embeddings_stay_within_a_hair_of_float32():
    texts = ["Where is the Vistula?", "Warsaw stands on the Vistula River in east-central Poland."]
    exact = TextEmbedder.load("minilm-l6", "fp32").embed(texts, "passage")
    fast = TextEmbedder.load("minilm-l6", "bf16").embed(texts, "passage")
    assert np.allclose(np.linalg.norm(exact, axis=1), 1.0, atol=1e-5)
    assert (exact * fast).sum(1).min() > 0.999


def test_the_cli_indexes_prints_the_folder_last_and_updates_in_place(docs, tmp_path):
    out = tmp_path / "cli-index"
    first = run("index", str(docs), "--output", str(out), "--chunk-size", "40", "--overlap", "10")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().splitlines()[-1] == str(out)
    assert "4 added, 0 changed, 0 removed, 0 unchanged files" in first.stderr
    manifest = json.loads((out / "modelyard-index.json").read_text())
    assert manifest["chunk_size"] == 40 and manifest["encoder"] == "minilm-l6" and len(manifest["files"]) == 4
    second = run("index", str(docs), "--output", str(out), "-q")
    assert second.returncode == 0 and second.stderr == ""


@pytest.mark.parametrize(
    ("setup", "extra", "message"),
    [
        ("empty", [], "holds no documents"),
        ("encrypted", [], "locked.pdf: the PDF is encrypted"),
        ("docs", ["--encoder", "bert-huge"], "unknown encoder 'bert-huge'"),
        ("not-an-index", [], "exists and is not a modelyard index"),
        ("docs", ["--chunk-size", "10"], "--overlap 20 (the default): must be at least 0 and less than the chunk"),
        ("damaged-index", [], "chunks.jsonl: line 1 is not a chunk"),
    ],
)
def test_bad_input_exits_1_with_one_clear_message(tmp_path, setup, extra, message):
    folder = tmp_path / "docs"
    folder.mkdir()
    output = tmp_path / "index"
    if setup == "encrypted":
        write_encrypted_pdf(folder / "locked.pdf", write_pdf(tmp_path / "open.pdf", ["numbers"]))
    elif setup in ("docs", "not-an-index"):
        (folder / "a.txt").write_text("Some text to index.")
    if setup == "not-an-index":
        output.mkdir()
        (output / "thesis.tex").write_text("precious")
    if setup == "damaged-index":
        (folder / "a.txt").write_text("Some text to index.")
        output.mkdir()
        (output / "modelyard-index.json").write_text('{"format": 1}')
        (output / "chunks.jsonl").write_text("{cut off\n")
    result = run("index", str(folder), "--output", str(output), *extra)
    assert result.returncode == 1, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    if setup == "not-an-index":
        assert (output / "thesis.tex").read_text() == "precious"


@pytest.mark.slow
def test_hybrid_recall_at_5_on_the_squad_slice_is_at_least_bm25s_and_dense_alone(tmp_path):
    build(SLICE / "docs", tmp_path / "squad")
    index = Index.load(tmp_path / "squad")
    questions = [json.loads(line) for line in (SLICE / "questions.jsonl").read_text().splitlines()]
    recall = {}
    for mode in ("hybrid", "dense", "bm25"):
        results = index.search([q["question"] for q in questions], k=5, mode=mode)
        found = [
            any((h.file, h.section) == (q["file"], q["section"]) for h in hits)
            for q, hits in zip(questions, results, strict=True)
        ]
        recall[mode] = sum(found) / len(found)
    assert recall["hybrid"] >= 0.85 and recall["hybrid"] >= min(recall["dense"], recall["bm25"]), recall


@pytest.mark.slow
def test_multilingual_e5_finds_a_chinese_passage_for_a_chinese_question(tmp_path):
    docs = write_docs(tmp_path / "docs")
    (docs / "privacy_zh.md").write_text(
        "# 隐私\n\n## 日志脱敏\n\n服务器的预测日志默认会对电子邮件地址、电话号码和人名进行脱敏处理。\n\n"
        "## 差分隐私训练\n\n在配置中设置 train.privacy 即可使用差分隐私随机梯度下降训练模型。\n",
        encoding="utf-8",
    )
    build(docs, tmp_path / "index", encoder="multilingual-e5-small")
    index = Index.load(tmp_path / "index")
    assert index.embedder.prefixes == {"query": "query: ", "passage": "passage: "}
    for mode in ("dense", "hybrid"):
        [[best]] = index.search(["日志里的电话号码会被隐藏吗？"], k=1, mode=mode)
        assert (best.file, best.section) == ("privacy_zh.md", "隐私 > 日志脱敏"), mode
