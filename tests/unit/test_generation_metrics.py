"""Generation metrics on tiny examples whose values were worked out by hand."""

from __future__ import annotations

import pytest

from modelyard.metrics.generation import (
    bleu,
    chrf,
    exact_match,
    faithfulness,
    generation_metrics,
    rouge_l,
    token_f1,
    tokens,
)


def test_rouge_l_is_the_f_measure_of_the_longest_common_token_subsequence():
    # LCS of "the cat sat on the mat" / "the cat is on the mat" is "the cat on the mat": 5 of 6 tokens each way
    assert rouge_l(["the cat sat on the mat"], ["the cat is on the mat"]) == pytest.approx([5 / 6])


def test_rouge_l_scores_chinese_by_character_where_rouge_scores_default_would_see_nothing():
    assert tokens("我爱北京") == ["我", "爱", "北", "京"]
    assert rouge_l(["我爱北京"], ["我爱上海"]) == pytest.approx([0.5])


def test_exact_match_ignores_case_punctuation_and_articles():
    assert exact_match("The Eiffel Tower!", "eiffel tower") == 1.0
    assert exact_match("Eiffel", "eiffel tower") == 0.0


def test_token_f1_is_squads_harmonic_mean_of_token_precision_and_recall():
    assert token_f1("in the year 1889", "1889") == pytest.approx(0.5)  # precision 1/3, recall 1
    assert token_f1("Paris France", "Paris") == pytest.approx(2 / 3)
    assert token_f1("London", "Paris") == 0.0


def test_bleu_and_chrf_are_100_for_identical_text_and_0_for_disjoint_text():
    assert bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100.0)
    assert chrf(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100.0)
    assert bleu(["xyz qqq"], ["the cat sat on the mat"]) == 0.0
    assert chrf(["xyz qqq"], ["abc"]) == 0.0


def test_bleu_tokenises_chinese_references_by_character():
    # with sacrebleu's default 13a tokenizer the unspaced sentence is one token and a near miss scores 0
    assert bleu(["我爱北京天安门"], ["我爱北京天安门"]) == pytest.approx(100.0)
    assert 0 < bleu(["我爱北京天安门广场"], ["我爱北京天安门"]) < 100


def test_faithfulness_counts_answer_content_tokens_and_sentences_found_in_the_passages():
    passages = ["The capital of France is Paris."]
    assert faithfulness("Paris is the capital of France.", passages) == {
        "supported_tokens": 1.0,
        "supported_sentences": 1.0,
    }
    # content tokens paris, france (found), 9, moons (not): half; the second sentence is unsupported
    assert faithfulness("Paris is in France. It has 9 moons.", passages) == {
        "supported_tokens": 0.5,
        "supported_sentences": 0.5,
    }
    assert faithfulness("It is.", passages) == {"supported_tokens": None, "supported_sentences": None}


def test_generation_metrics_gives_corpus_figures_and_per_example_scores():
    summary, rows = generation_metrics(["Paris", "London"], ["paris", "Paris"], ["exact_match", "token_f1", "rouge_l"])
    assert summary == {"examples": 2, "exact_match": 0.5, "token_f1": 0.5, "rouge_l": 0.5}
    assert rows == [
        {"rouge_l": 1.0, "exact_match": 1.0, "token_f1": 1.0},
        {"rouge_l": 0.0, "exact_match": 0.0, "token_f1": 0.0},
    ]
