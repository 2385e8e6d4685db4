"""Entity data: CoNLL/BIO and JSONL span readers, their errors, the word split and BIO <-> span conversions,
entity-level metrics and the memorisation baseline."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pandas as pd
import pytest

from modelyard.data.entities import read_conll, read_entities, read_spans, split_words, tag_spans, word_tags
from modelyard.errors import DataError
from modelyard.learners.tag_memory import memory_baseline
from modelyard.metrics.entities import entity_metrics

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def surfaces(example: dict) -> list[tuple[str, str]]:
    return [(e["label"], example["text"][e["start"] : e["end"]]) for e in example["entities"]]


def test_conll_sentences_become_text_with_character_spans(tmp_path):
    path = write(
        tmp_path / "a.conll",
        "-DOCSTART-\tO\n\nEmpire\tB-location\nState\tI-location\nBuilding\tI-location\n=\tO\nESB\tB-location\n"
        "\t\nAda\tB-person\nwrote\tO\n",
    )
    examples, report = read_conll(path)
    assert [e["text"] for e in examples] == ["Empire State Building = ESB", "Ada wrote"]
    assert surfaces(examples[0]) == [("location", "Empire State Building"), ("location", "ESB")]
    assert surfaces(examples[1]) == [("person", "Ada")]
    assert (report.sentences, report.tokens, report.entities, report.repaired_bio) == (2, 7, 3, 0)


def test_an_inside_tag_without_its_begin_is_repaired_and_reported_with_its_line(tmp_path):
    path = write(tmp_path / "a.conll", "the\tO\nBig\tI-ORG\nCo\tI-ORG\nand\tO\nAl\tI-PER\n")
    examples, report = read_conll(path)
    assert surfaces(examples[0]) == [("ORG", "Big Co"), ("PER", "Al")]
    assert report.repaired_bio == 2 and report.first_repair.startswith(f"{path}:2 ")


def test_an_unknown_tag_is_an_error_naming_the_file_and_line(tmp_path):
    path = write(tmp_path / "a.conll", "Ada\tB-PER\nwrote\tO\n\nLondon\tLOC\n")
    with pytest.raises(DataError, match=rf"{path}:4: unknown tag 'LOC'"):
        read_conll(path)


def test_a_line_without_a_tag_is_an_error_naming_the_file_and_line(tmp_path):
    path = write(tmp_path / "a.conll", "Ada\tB-PER\nwrote\n")
    with pytest.raises(DataError, match=rf"{path}:2: expected a token and a tag"):
        read_conll(path)


def test_two_conll_entities_in_one_word_of_the_text_are_refused_as_in_jsonl(tmp_path):
    """They were merged into one entity silently, where JSONL refuses the same data."""
    path = write(tmp_path / "a.conll", "Ada\tB-PER\n\n# text = NewYork\nNew\tB-LOC\nYork\tB-LOC\n")
    with pytest.raises(DataError, match=rf"{path}:4: entities 'New' \(0-3\) and 'York' \(3-7\) fall in one word"):
        read_conll(path)


def test_conllu_style_chinese_takes_the_sentence_from_its_text_comment_and_words_are_characters():
    examples, report = read_conll(EXAMPLES / "uner_zh_gsdsimp" / "train.iob2", token_column=1, tag_column=2)
    assert report.sentences == 200 and report.entities > 100
    with_entities = next(e for e in examples if e["entities"])
    assert " " not in with_entities["text"]
    words = split_words(with_entities["text"])
    assert all(end - start == 1 for start, end in words if "\u4e00" <= with_entities["text"][start] <= "\u9fff")
    for span in with_entities["entities"]:
        assert span["label"] in {"PER", "LOC", "ORG"} and with_entities["text"][span["start"] : span["end"]]


def test_jsonl_spans_are_read_and_sorted(tmp_path):
    rows = [
        {
            "text": "Order 12345: ship the Widget Pro to Oslo",
            "entities": [{"start": 36, "end": 40, "label": "LOC"}, {"start": 6, "end": 11, "label": "ORDER"}],
        },
        {"text": "nothing here"},
    ]
    path = write(tmp_path / "a.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    examples, report = read_entities(path, text_field="text", entities_field="entities", token_column=0, tag_column=-1)
    assert surfaces(examples[0]) == [("ORDER", "12345"), ("LOC", "Oslo")]
    assert examples[1]["entities"] == [] and report.entities == 2


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"text": "abc", "entities": [', r":2: not valid JSON"),
        ('{"text": "abc", "entities": [{"start": 1, "end": 9, "label": "X"}]}', r":2: entity 0 \(1, 9\) lies outside"),
        (
            '{"text": "abcdef", "entities": [{"start": 0, "end": 3, "label": "X"}, {"start": 2, "end": 5, '
            '"label": "Y"}]}',
            r":2: entities 'abc' \(0-3\) and 'cde' \(2-5\) overlap",
        ),
        (
            '{"text": "Bob went to Paris", "entities": [{"start": 3, "end": 0, "label": "PER"}]}',
            r":2: entity 0 \(3, 0\): start must be smaller than end",
        ),
        ('{"text": "abc", "entities": [{"start": 1, "end": 1, "label": "X"}]}', r":2: entity 0 \(1, 1\): start must"),
        ('{"text": "abc", "entities": [{"start": 0, "end": 2}]}', r":2: entity 0 must have start, end and label"),
        ('{"text": "a  b", "entities": [{"start": 1, "end": 3, "label": "X"}]}', r":2: entity 0 \(1, 3\) covers only"),
        (
            '{"text": "NewYork", "entities": [{"start": 0, "end": 3, "label": "LOC"}, {"start": 3, "end": 7, '
            '"label": "LOC"}]}',
            r":2: entities 'New' \(0-3\) and 'York' \(3-7\) fall in one word 'NewYork'",
        ),
        ('{"text": "abc", "entities": [{"start": 0, "end": 3, "label": " O"}]}', r":2: entity 0 has no usable label"),
    ],
)
def test_malformed_jsonl_is_an_error_naming_the_file_and_line(tmp_path, line, message):
    path = write(tmp_path / "a.jsonl", '{"text": "fine", "entities": []}\n' + line + "\n")
    with pytest.raises(DataError, match=str(path) + message):
        read_spans(path)


def test_the_widened_count_of_a_file_is_in_its_read_report(tmp_path):
    row = {"text": "the Olympics2024 games", "entities": [{"start": 4, "end": 12, "label": "EVENT"}]}
    path = write(tmp_path / "a.jsonl", json.dumps(row) + "\n")
    assert read_spans(path)[1].as_dict()["widened"] == 1


def test_word_tags_and_tag_spans_round_trip_character_offsets():
    text = "Ada Lovelace met 张伟 in London."
    entities = [
        {"start": 0, "end": 12, "label": "PER"},
        {"start": 17, "end": 19, "label": "PER"},
        {"start": 23, "end": 29, "label": "LOC"},
    ]
    words = split_words(text)
    tags, widened = word_tags(text, entities, words)
    assert widened == 0
    assert tags == ["B-PER", "I-PER", "O", "B-PER", "I-PER", "O", "B-LOC", "O"]
    spans = tag_spans(text, words, tags, [0.9] * len(words))
    assert [(s["start"], s["end"], s["label"], s["text"]) for s in spans] == [
        (0, 12, "PER", "Ada Lovelace"),
        (17, 19, "PER", "张伟"),
        (23, 29, "LOC", "London"),
    ]
    assert all(s["score"] == 0.9 for s in spans)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (unicodedata.normalize("NFD", "Zoë Saldaña"), ["Zoe\u0308", "Saldan\u0303a"]),
        ("हिन्दी भाषा", ["हिन्दी", "भाषा"]),
        ("Cafe\u0301, ok!", ["Cafe\u0301", ",", "ok", "!"]),
        ("前天李娜去了广州。", list("前天李娜去了广州。")),
    ],
)
def test_combining_marks_stay_in_their_word_and_chinese_stays_per_character(text, words):
    spans = split_words(text)
    assert [text[start:end] for start, end in spans] == words
    tags, widened = word_tags(text, [{"start": 0, "end": spans[0][1], "label": "X"}], spans)
    found = tag_spans(text, spans, tags)
    assert widened == 0 and found[0]["text"] == words[0] == text[found[0]["start"] : found[0]["end"]]


def test_entity_metrics_count_exact_type_and_boundaries_only():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG"]]
    predicted = [["B-PER", "O", "O", "B-LOC"], ["O", "B-ORG"]]  # the person is cut short: a miss and a false hit
    metrics = entity_metrics(gold, predicted)
    assert metrics["entity_precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert metrics["entity_recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert metrics["per_type"]["PER"]["f1"] == 0.0 and metrics["per_type"]["LOC"]["f1"] == 1.0
    assert metrics["token_accuracy"] == pytest.approx(5 / 6, abs=1e-4)


def test_the_memorisation_baseline_finds_seen_entities_only():
    train = pd.DataFrame(
        {
            "text": ["Ada met Bob", "Bob saw Ada"],
            "entities": [
                [{"start": 0, "end": 3, "label": "PER"}, {"start": 8, "end": 11, "label": "PER"}],
                [{"start": 0, "end": 3, "label": "PER"}, {"start": 8, "end": 11, "label": "PER"}],
            ],
        }
    )
    test = pd.DataFrame(
        {
            "text": ["ada and Cy"],
            "entities": [[{"start": 0, "end": 3, "label": "PER"}, {"start": 8, "end": 10, "label": "PER"}]],
        }
    )
    scores = memory_baseline(train, {"test": test})["test"]
    assert scores["entity_precision"] == 1.0 and scores["entity_recall"] == 0.5


def test_the_starter_config_is_valid_and_stops_early_on_entity_f1():
    import yaml

    from modelyard.tasks import config_from_dict, get_task

    task = get_task("token_classification")
    config = config_from_dict(yaml.safe_load(task.starter_config()))
    assert config.task == "token_classification" and config.train.early_stopping.metric == task.main_metric
