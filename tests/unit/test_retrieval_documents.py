"""Readers, chunking, BM25 tokens, rank fusion and retrieval metrics: no encoder involved."""

from __future__ import annotations

import pytest
from retrieval_helpers import write_docs, write_encrypted_pdf, write_pdf

from modelyard.errors import ConfigError, DataError
from modelyard.metrics.retrieval import mrr, recall_at_k, retrieval_metrics
from modelyard.retrieval.chunking import MAX_WORD, check, chunk_sections, split
from modelyard.retrieval.index import MANIFEST, fuse, read_index
from modelyard.retrieval.lexical import tokenize
from modelyard.retrieval.readers import Section, list_documents, read_document


def test_markdown_sections_carry_their_heading_trail_and_code_hashes_are_not_headings(tmp_path):
    doc = tmp_path / "a.md"
    doc.write_text("Intro line.\n\n# Setup\n\n## Linux\n\nRun it.\n\n```sh\n# not a heading\n```\n\n# Use\n\nCall.\n")
    sections = read_document(doc)
    assert [s.heading for s in sections] == ["", "Setup > Linux", "Use"]
    assert "# not a heading" in sections[1].text and sections[2].text == "Call."


def test_html_keeps_visible_text_under_its_headings_and_drops_scripts(tmp_path):
    sections = read_document(write_docs(tmp_path) / "trains.html")
    assert [s.heading for s in sections] == ["Railways", "Railways > Gauges"]
    assert "Stockton and Darlington" in sections[0].text and "ignore me" not in sections[0].text


def test_html_markup_that_is_not_text_is_not_indexed(tmp_path):
    page = tmp_path / "page.html"
    page.write_text('<!doctype html><?xml version="1.0"?><html><body><!-- note --><p>Ferries <![CDATA[x]]> sail.</p>')
    assert [s.text for s in read_document(page)] == ["Ferries\nsail."]


def test_plain_text_is_one_section(tmp_path):
    assert read_document(write_docs(tmp_path) / "notes.txt")[0].text.startswith("Volcanoes erupt")


def test_pdf_pages_become_sections(tmp_path):
    pdf = write_pdf(tmp_path / "r.pdf", ["First page text.", "Second page text."])
    assert read_document(pdf) == [Section("page 1", "First page text."), Section("page 2", "Second page text.")]


def test_a_pdf_without_a_text_layer_has_no_sections(tmp_path):
    assert read_document(write_pdf(tmp_path / "scan.pdf", [""])) == []


def test_an_encrypted_pdf_is_refused_by_name(tmp_path):
    locked = write_encrypted_pdf(tmp_path / "locked.pdf", write_pdf(tmp_path / "open.pdf", ["secret numbers"]))
    with pytest.raises(DataError, match=r"locked\.pdf: the PDF is encrypted"):
        read_document(locked)


def test_a_damaged_pdf_is_refused_by_name(tmp_path):
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"this is not a pdf at all")
    with pytest.raises(DataError, match=r"broken\.pdf: not a readable PDF"):
        read_document(broken)


def test_text_that_is_not_utf8_is_refused_by_name(tmp_path):
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café crème".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.txt: not UTF-8"):
        read_document(latin)


def test_listing_skips_hidden_files_and_unknown_types(tmp_path):
    write_docs(tmp_path)
    (tmp_path / ".hidden.md").write_text("x")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    names = [p.name for p in list_documents(tmp_path)]
    assert names == ["garden.md", "notes.txt", "report.pdf", "trains.html"]


def test_chunks_overlap_by_the_given_number_of_words():
    text = " ".join(f"w{i}" for i in range(10))
    assert split(text, 4, 1) == ["w0 w1 w2 w3", "w3 w4 w5 w6", "w6 w7 w8 w9"]
    assert split(text, 4, 0) == ["w0 w1 w2 w3", "w4 w5 w6 w7", "w8 w9"]


def test_chinese_characters_count_as_words_and_chunks_keep_file_and_section():
    chunks = chunk_sections("zh.md", [Section("简介", "华沙是波兰的首都")], size=4, overlap=2)
    assert [c.text for c in chunks] == ["华沙是波", "是波兰的", "兰的首都"]
    assert {(c.file, c.section) for c in chunks} == {("zh.md", "简介")}


def test_overlap_must_be_smaller_than_the_chunk():
    with pytest.raises(ConfigError, match="--overlap 5"):
        check(5, 5)


def test_an_overlap_the_user_did_not_give_is_named_as_the_default_with_the_key_to_set():
    with pytest.raises(ConfigError, match=r"model.overlap 30 \(the default\): .*\(model.chunk_size 20\)") as err:
        check(20, 30, ("model.chunk_size", "model.overlap"), "the default")
    assert "set model.overlap" in str(err.value)


def test_a_word_without_spaces_is_cut_so_no_chunk_grows_past_its_cap():
    blob = "QUJD" * 500_000  # 2 MB of base64 on one line
    pieces = split(f"{blob} end", 150, 30)
    assert max(len(p) for p in pieces) <= 150 * MAX_WORD and pieces[-1].endswith("end")
    assert split("tea" + " " * 10_000 + "cake", 2, 0) == ["tea cake"]  # spacing alone cannot inflate a chunk


def test_bm25_tokens_drop_stop_words_stem_english_and_split_chinese_into_characters_and_bigrams():
    assert tokenize("The watered tomatoes of Warsaw") == ["water", "tomato", "warsaw"]
    assert tokenize("华沙，首都") == ["华", "沙", "华沙", "首", "都", "首都"]


def test_reciprocal_rank_fusion_rewards_rows_both_rankings_agree_on():
    dense, bm25 = [(1, 0.9), (2, 0.8), (3, 0.1)], [(2, 12.0), (3, 7.0)]
    assert [row for row, _ in fuse([dense, bm25])] == [2, 3, 1]


def test_recall_at_k_and_mrr_count_a_repeated_relevant_key_once():
    ranked = [["a", "a", "b"], ["x", "y", "z"], ["q", "p"]]
    relevant = [{"a"}, {"z"}, {"p", "r"}]
    assert recall_at_k(ranked, relevant, 1) == pytest.approx((1 + 0 + 0) / 3)
    assert recall_at_k(ranked, relevant, 3) == pytest.approx((1 + 1 + 0.5) / 3)
    assert mrr(ranked, relevant) == pytest.approx((1 + 1 / 3 + 1 / 2) / 3)
    assert retrieval_metrics(ranked, relevant, ks=(1,))["recall_at_k"] == {"1": 0.3333}


def test_a_damaged_index_is_refused_naming_the_file_and_line(tmp_path):
    (tmp_path / MANIFEST).write_text('{"format": 1}')
    row = '{"file": "a.md", "section": "", "text": "Tea."}\n'
    (tmp_path / "chunks.jsonl").write_text(row + '{"file": "a.md", "sect\n')
    with pytest.raises(DataError, match=r"chunks.jsonl: line 2 is not a chunk"):
        read_index(tmp_path)
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(DataError, match=f"{MANIFEST}: not a readable index manifest"):
        read_index(tmp_path)
