import pandas as pd
import pytest

from modelyard.config import SplitConfig
from modelyard.data.splits import make_splits
from modelyard.errors import DataError


def frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"text": [f"t{i}" for i in range(rows)], "label": ["a", "b"] * (rows // 2)})


def test_the_carved_shares_are_the_ones_asked_for_even_above_a_half():
    splits, _ = make_splits(frame(100), None, None, SplitConfig(test=0.7, validation=0.1), "label")
    assert {k: len(v) for k, v in splits.items()} == {"train": 20, "validation": 10, "test": 70}


def test_a_share_too_large_for_the_rows_names_its_key():
    with pytest.raises(DataError, match=r"data\.split\.test=0\.7: 2 rows are too few"):
        make_splits(frame(2), None, None, SplitConfig(test=0.7, validation=0.0), "label")
