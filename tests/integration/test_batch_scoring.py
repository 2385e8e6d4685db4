"""Batch scoring of table files: streamed in chunks, resumed after a SIGKILL, refused over a changed input, for
frame-scoring (LightGBM) and text (TF-IDF) bundles; and the same bundle on a local Ray cluster."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import modelyard
from modelyard.batch import score_file, score_file_ray
from modelyard.errors import BundleError, DataError, UserError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SLICE = EXAMPLES / "data" / "credit_default" / "credit_default_2000.csv"
pytestmark = pytest.mark.slow  # one LightGBM training run (~10 s) shared by the module


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("credit")
    shutil.copy(EXAMPLES / "credit_scoring.yaml", folder / "credit.yaml")
    shutil.copytree(EXAMPLES / "data" / "credit_default", folder / "data" / "credit_default")
    overrides = ["model.backbone=lightgbm", "train.time_limit_s=10"]
    return modelyard.train(folder / "credit.yaml", output=folder / "bundle", overrides=overrides, quiet=True)


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> Path:
    """120,000 rows resampled from the slice (features only), as Parquet."""
    frame = pd.read_csv(SLICE).drop(columns=["default.payment.next.month"])
    path = tmp_path_factory.mktemp("rows") / "rows.parquet"
    frame.sample(120_000, replace=True, random_state=0).reset_index(drop=True).to_parquet(path)
    return path


class Stop(Exception):
    pass


def stop_after(parts: int):
    """A progress callback that interrupts the run once `parts` chunks are journalled (the first call is 0 rows)."""
    calls = []

    def on_progress(done: int, total: int | None) -> None:
        calls.append(done)
        if len(calls) > parts:
            raise Stop

    return on_progress


def journalled(journal: Path) -> list[int]:
    """The row counts of the chunks a run's manifest lists so far (written atomically: never half a file)."""
    manifest = journal / "manifest.json"
    return json.loads(manifest.read_text())["parts"] if manifest.is_file() else []


def test_a_killed_run_resumes_where_it_stopped_and_equals_a_one_shot_run(bundle, rows, tmp_path):
    output = tmp_path / "scored.parquet"
    journal = tmp_path / "scored.parquet.partial"
    command = [sys.executable, "-m", "modelyard", "-q", "predict", str(bundle.path), "--input", str(rows)]
    command += ["--output", str(output), "--chunk-rows", "1000"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(journalled(journal)) < 3 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # a part counts once the manifest lists it (its file is written first)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    done_parts = journalled(journal)
    assert 3 <= len(done_parts) < 120 and not output.exists()  # killed mid-way: some of the 120 chunks done

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{sum(done_parts):,} of them from the stopped run" in rerun.stderr
    assert not journal.exists()

    done = score_file(bundle, rows, tmp_path / "one_shot.parquet", chunk_rows=50_000)
    assert done["rows"] == 120_000 and done["resumed_rows"] == 0
    resumed, one_shot = pd.read_parquet(output), pd.read_parquet(tmp_path / "one_shot.parquet")
    pd.testing.assert_frame_equal(resumed, one_shot)
    assert list(one_shot.columns[-2:]) == ["label", "probability"]


def test_a_stopped_run_refuses_another_input_under_the_same_output(bundle, tmp_path):
    source = tmp_path / "rows.csv"
    pd.read_csv(SLICE).to_csv(source, index=False)
    with pytest.raises(Stop):
        score_file(bundle, source, tmp_path / "out.csv", chunk_rows=500, on_progress=stop_after(2))
    assert json.loads((tmp_path / "out.csv.partial" / "manifest.json").read_text())["parts"] == [500, 500]
    pd.read_csv(SLICE).iloc[::-1].to_csv(source, index=False)  # same size, other rows
    with pytest.raises(UserError, match="another input file or bundle"):
        score_file(bundle, source, tmp_path / "out.csv", chunk_rows=500)


def test_a_resumed_csv_output_has_one_header_and_every_row_in_order(bundle, tmp_path):
    source = tmp_path / "rows.csv"
    pd.read_csv(SLICE).to_csv(source, index=False)
    with pytest.raises(Stop):
        score_file(bundle, source, tmp_path / "out.csv", chunk_rows=300, on_progress=stop_after(3))
    stale = tmp_path / ".out.csv.0badc0de.tmp"  # what a run killed while joining its parts leaves
    others = [tmp_path / ".out.csv.notes.tmp", tmp_path / ".other.csv.0badc0de.tmp"]
    for path in [stale, *others]:
        path.write_text("x")
    done = score_file(bundle, source, tmp_path / "out.csv", chunk_rows=999)  # the journal's chunk size wins
    assert not stale.exists() and all(path.exists() for path in others)
    assert done["resumed_rows"] == 900 and done["rows"] == 2000
    scored = pd.read_csv(tmp_path / "out.csv")
    pd.testing.assert_frame_equal(scored.drop(columns=["label", "probability"]), pd.read_csv(SLICE))
    assert scored["label"].astype(str).isin(["0", "1"]).all()


def test_a_text_bundle_streams_one_answer_per_row(tfidf_bundle, banking_slice, tmp_path):
    model = modelyard.load(tfidf_bundle)
    texts = pd.read_csv(banking_slice / "test.csv")
    texts.to_parquet(tmp_path / "texts.parquet")
    done = score_file(model, tmp_path / "texts.parquet", tmp_path / "scored.jsonl", chunk_rows=7)
    scored = pd.read_json(tmp_path / "scored.jsonl", lines=True)
    assert done["rows"] == len(scored) == len(texts)
    expected = model.predict(texts["text"].tolist())
    assert scored["label"].tolist() == [a["label"] for a in expected]
    assert scored["score"].tolist() == pytest.approx([a["score"] for a in expected])
    assert (scored["text"] == texts["text"]).all()


def test_a_local_ray_cluster_scores_the_file_like_one_process(bundle, rows, tmp_path):
    import ray
    from typer.testing import CliRunner

    from modelyard.cli import app

    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)  # a real local cluster: 2 workers + reads
    try:
        small = pd.read_parquet(rows).iloc[:20_000]
        small.to_parquet(tmp_path / "small.parquet", row_group_size=3_000)
        cli = ["predict", str(bundle.path), "--input", str(tmp_path / "small.parquet")]
        cli += ["--output", str(tmp_path / "ray.parquet"), "--engine", "ray", "--workers", "2", "--chunk-rows", "4000"]
        result = CliRunner().invoke(app, cli)
        assert result.exit_code == 0, result.output
        score_file(bundle, tmp_path / "small.parquet", tmp_path / "local.parquet")
        on_ray, local = pd.read_parquet(tmp_path / "ray.parquet"), pd.read_parquet(tmp_path / "local.parquet")
        pd.testing.assert_frame_equal(on_ray, local)
        with pytest.raises(BundleError, match="not a bundle"):  # raised on a worker, shown as itself
            score_file_ray(tmp_path, tmp_path / "small.parquet", tmp_path / "none.parquet")
        ray_checks_like_one_process(bundle, small.iloc[:3_000], tmp_path)
    finally:
        ray.shutdown()


def ray_checks_like_one_process(bundle, small: pd.DataFrame, tmp_path: Path) -> None:
    """On Ray: a missing feature is refused, unseen categories are reported, a folder of Parquet files is read
    (through the CLI too), one whose files differ is refused naming the file, an int64 column keeps its nulls."""
    from typer.testing import CliRunner

    from modelyard.cli import app

    small.drop(columns=["PAY_0"]).to_parquet(tmp_path / "no_pay.parquet")
    with pytest.raises(DataError, match="required column\\(s\\) missing: 'PAY_0'"):
        score_file_ray(bundle.path, tmp_path / "no_pay.parquet", tmp_path / "no_pay_out.parquet")
    assert not (tmp_path / "no_pay_out.parquet").exists()
    folder = tmp_path / "parts"
    folder.mkdir()
    odd = small.assign(EDUCATION=small["EDUCATION"].where(small.index % 2 == 0, 77), ID=small["ID"].astype("Int64"))
    odd.loc[odd.index[1], "ID"] = None
    odd.iloc[:1_000].to_parquet(folder / "a.parquet")
    odd.iloc[1_000:].to_parquet(folder / "b.parquet")
    warned: list[str] = []
    done = score_file_ray(bundle.path, folder, tmp_path / "folder.parquet", warn=warned.append)
    assert done["rows"] == 3_000 and done["schema"]["unseen"]["EDUCATION"]["rows"] >= 1_500
    assert any("unseen category" in line for line in warned)
    scored = pd.read_parquet(tmp_path / "folder.parquet", dtype_backend="numpy_nullable")
    assert scored["ID"].dtype == "Int64" and scored["ID"].isna().sum() == 1 and len(scored) == 3_000
    cli = ["predict", str(bundle.path), "--input", str(folder), "--output", str(tmp_path / "cli.parquet")]
    result = CliRunner().invoke(app, [*cli, "--engine", "ray"])
    assert result.exit_code == 0 and "unseen categories" in result.output, result.output
    odd.iloc[:10].drop(columns=["AGE"]).to_parquet(folder / "c.parquet")
    with pytest.raises(DataError, match=r"c\.parquet: its columns .* differ from those of .*a\.parquet"):
        score_file_ray(bundle.path, folder, tmp_path / "mixed.parquet")


def test_a_gbdt_bundle_scores_without_importing_torch(bundle, rows):
    """Each Ray worker loads the bundle: torch (~400 MB a process) would push a 2-worker run past 2 GB."""
    code = (
        "import sys; from pathlib import Path; import pandas as pd; import modelyard;"
        "from modelyard.batch.stream import predictions_frame;"
        "predictions_frame(modelyard.load(sys.argv[1]), pd.read_parquet(sys.argv[2]).iloc[:100], Path('x'));"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(bundle.path), str(rows)], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr[-2000:]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_input_columns_come_through_unchanged_int64_with_a_null_included(tfidf_bundle, tmp_path, suffix):
    """Through pandas, an int64 column with a null became float64: 2**53 + 1 was written as 2**53."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = [9007199254740993, None, 1234567890123456789]
    nested = pa.array([{"a": 9007199254740993}, {"a": None}, None], pa.struct([("a", pa.int64())]))
    source = tmp_path / "rows.parquet"
    table = pa.table({"id": pa.array(ids, pa.int64()), "text": ["hi", "card lost", "refund"], "n": nested})
    pq.write_table(table, source)
    score_file(modelyard.load(tfidf_bundle), source, tmp_path / f"out{suffix}", chunk_rows=2)
    if suffix == ".parquet":
        scored = pq.read_table(tmp_path / "out.parquet")
        assert scored.schema.field("id").type == pa.int64() and scored.column("id").to_pylist() == ids
        assert scored.schema.field("n").type == nested.type and scored.column("n").to_pylist() == nested.to_pylist()
    else:
        lines = (tmp_path / "out.csv").read_text().splitlines()
        assert [line.split(",")[0] for line in lines[1:]] == ["9007199254740993", "", "1234567890123456789"]
