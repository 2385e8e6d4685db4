"""One category or class label as every file format reads it (CSV text, JSON numbers, pandas' floats)."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.data.categories import category_text


@pytest.mark.parametrize("value", [2, "2", " 2 ", 2.0, "2.0", "2.", "2.00", np.float32(2), np.int64(2)])
def test_a_whole_number_in_any_form_is_one_category(value):
    assert category_text(value) == "2"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("02", "02"),
        ("02.0", "02.0"),
        ("2.5", "2.5"),
        ("abc", "abc"),
        ("-3.0", "-3"),
        ("-0.0", "0"),
        (True, "True"),
        ("1e3", "1e3"),
    ],
)
def test_codes_fractions_and_words_stay_as_written(value, text):
    assert category_text(value) == text


@pytest.mark.parametrize("value", [None, float("nan"), np.float32("nan"), "", "   "])
def test_an_absent_value_is_no_category(value):
    assert category_text(value) is None
