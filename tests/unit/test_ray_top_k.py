"""A Ray worker scores at the --top-k asked, as a one-process `predict --top-k` does (no Ray cluster needed)."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
from typer.testing import CliRunner

from modelyard.batch.ray_engine import BundleScorer
from modelyard.cli import app


def test_a_ray_worker_scores_top_k_labels_like_one_process(tfidf_bundle, banking_slice, tmp_path):
    source, local = tmp_path / "texts.parquet", tmp_path / "local.parquet"
    pd.read_csv(banking_slice / "test.csv").iloc[:12].to_parquet(source)
    cli = ["predict", str(tfidf_bundle), "--input", str(source), "--output", str(local), "--top-k", "2"]
    result = CliRunner().invoke(app, cli)
    assert result.exit_code == 0, result.output
    table, _, _ = BundleScorer(str(tfidf_bundle), str(source), top_k=2).scored(pq.read_table(source))
    on_ray = table.to_pandas()
    assert on_ray["probabilities"].map(lambda text: text.count('"label"')).eq(2).all()
    pd.testing.assert_frame_equal(on_ray, pd.read_parquet(local))
