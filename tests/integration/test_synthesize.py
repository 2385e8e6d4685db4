"""`modelyard synthesize` on the committed 2,000-row credit-default slice: synthetic rows with the file's columns
and types, no copy of a real row, categories only from the real ones, and reports holding the train-on-synthetic
score; a table of every column type round-trips through Parquet with its types and missing rates; bad input
fails with one clear message."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CREDIT = EXAMPLES / "data" / "credit_default" / "credit_default_2000.csv"
TARGET = "default.payment.next.month"
CODES = ("SEX", "EDUCATION", "MARRIAGE")


def _config(folder: Path, train: Path, **data) -> Path:
    config = {
        "name": "synthetic-test",
        "task": "tabular_classification",
        "data": {"train": str(train), "target_column": TARGET, "split": {"validation": 0.0, "test": 0.2}} | data,
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    from modelyard import cli

    monkeypatch.setattr(sys, "argv", ["modelyard", *args])
    with pytest.raises(SystemExit) as done:
        cli.main()
    out = capsys.readouterr()
    return done.value.code, out.out, out.err


def _run(monkeypatch, capsys, *args: str) -> str:
    code, out, err = _cli(monkeypatch, capsys, *args)
    assert code == 0, err
    return out.strip().splitlines()[-1]


@pytest.fixture
def credit_config(tmp_path):
    return _config(tmp_path, CREDIT, column_types={c: "categorical" for c in CODES})


@pytest.mark.parametrize("method", ["copula", "ctgan"])
def test_synthesized_credit_rows_keep_columns_and_types_and_copy_no_real_row(
    method, credit_config, tmp_path, monkeypatch, capsys
):
    output = tmp_path / f"{method}.csv"
    args = ["synthesize", str(credit_config), "--rows", "500", "-o", str(output), "--method", method, "-q"]
    printed = _run(monkeypatch, capsys, *args, *(["--epochs", "5"] if method == "ctgan" else []))
    assert printed == str(output)
    real, synthetic = pd.read_csv(CREDIT), pd.read_csv(output)
    assert len(synthetic) == 500
    assert list(synthetic.columns) == list(real.columns)
    assert synthetic.dtypes.to_dict() == real.dtypes.to_dict()
    assert synthetic["ID"].tolist() == list(range(1, 501))  # surrogate IDs, never the real ones
    features = [c for c in real.columns if c != "ID"]
    copies = synthetic[features].merge(real[features].drop_duplicates(), how="inner", on=features)
    assert len(copies) == 0
    for column in (*CODES, TARGET):
        assert set(synthetic[column].unique()) <= set(real[column].unique()), column
    assert synthetic[TARGET].nunique() == 2
    report = json.loads(output.with_name(f"{method}.report.json").read_text())
    utility = report["fidelity"]["utility"]
    assert utility["metric"] == "roc_auc" and utility["test_rows"] == 400
    assert 0 <= utility["train_on_synthetic"]["roc_auc"] <= 1 and utility["train_on_real"]["roc_auc"] > 0.6
    assert report["privacy"]["exact_copies"] == 0
    assert report["privacy"]["dcr"]["synthetic"]["median"] > 0
    assert set(report["fidelity"]["columns"]) == set(features)
    html = output.with_name(f"{method}.report.html").read_text()
    assert "train on synthetic" in html.lower() and "Exact copies of real rows: <b>0</b>" in html


def test_copula_rows_are_faithful_enough_to_train_on(credit_config, tmp_path):
    from modelyard.synthetic import synthesize
    from modelyard.tasks import load_config

    result = synthesize(load_config(credit_config), 1600, tmp_path / "copula.csv", "copula")
    fidelity = result.report["fidelity"]
    # measured on this slice with seeds 1-3: gap -0.005..0.018, worst column 0.024..0.038, correlations 0.045..0.055
    assert fidelity["utility"]["gap"] < 0.06
    assert max(c["distance"] for c in fidelity["columns"].values()) < 0.1
    assert fidelity["correlations"]["mean_abs_difference"] < 0.08


def test_every_column_type_round_trips_through_parquet_with_its_missing_rate(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(0)
    n = 600
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(1000, 1000 + n),
            "count": rng.integers(0, 20, n),
            "amount": rng.gamma(2.0, 150.0, n).round(2),
            "member": rng.random(n) < 0.4,
            "since": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D"),
            "region": pd.Series(rng.choice(["north", "south", "east"], n)).where(rng.random(n) > 0.2, None),
            "churned": rng.choice(["yes", "no"], n, p=[0.3, 0.7]),
        }
    )
    frame["amount"] = frame["amount"].where(rng.random(n) > 0.1)
    source = tmp_path / "customers.parquet"
    frame.to_parquet(source, index=False)
    config = _config(tmp_path, source, target_column="churned")
    output = tmp_path / "customers-synthetic.parquet"
    _run(monkeypatch, capsys, "synthesize", str(config), "--rows", "2000", "-o", str(output), "-q")
    synthetic = pd.read_parquet(output)
    assert synthetic.dtypes.to_dict() == frame.dtypes.to_dict()
    assert set(synthetic["region"].dropna()) <= {"north", "south", "east"}
    assert set(synthetic["churned"]) == {"yes", "no"}
    for column, rate in (("region", 0.2), ("amount", 0.1)):
        assert abs(synthetic[column].isna().mean() - rate) < 0.05, column
    assert synthetic["since"].between(frame["since"].min(), frame["since"].max()).all()
    assert (synthetic["since"] == synthetic["since"].dt.normalize()).all()  # whole days, as in the source


def _coarse_table(folder: Path, combinations: int) -> Path:
    """Few distinct rows: most generated rows equal a real one."""
    rng = np.random.default_rng(1)
    n = 300
    frame = pd.DataFrame(
        {
            "plan": rng.choice(list("pqrs")[:combinations], n, p=None if combinations < 4 else [0.4, 0.3, 0.2, 0.1]),
            "visits": rng.integers(0, combinations + 1, n),
            "churned": rng.choice(["0", "1"], n),
        }
    )
    source = folder / "coarse.csv"
    frame.to_csv(source, index=False)
    return source


def test_generated_copies_of_real_rows_are_replaced_or_dropped_and_reported(tmp_path):
    from modelyard.synthetic import synthesize
    from modelyard.tasks import load_config

    source = _coarse_table(tmp_path, 4)
    config = _config(tmp_path, source, target_column="churned", column_types={"plan": "categorical"})
    result = synthesize(load_config(config), 200, tmp_path / "out.csv", "copula")
    real, synthetic = pd.read_csv(source), pd.read_csv(tmp_path / "out.csv")
    privacy = result.report["privacy"]
    assert privacy["copies_replaced"] > 100  # 40 combinations, nearly all of them real: most rows are dropped
    assert len(synthetic) + privacy["rows_dropped"] == 200
    assert len(synthetic.merge(real.drop_duplicates(), how="inner", on=list(real.columns))) == 0
    assert privacy["exact_copies"] == 0
    assert any("replaced by fresh samples" in note for note in result.report["notes"])


def test_a_table_with_nothing_but_real_combinations_is_refused(tmp_path, monkeypatch, capsys):
    source = _coarse_table(tmp_path, 1)  # one plan, visits 0..1, two labels: 4 combinations, all real
    config = _config(tmp_path, source, target_column="churned")
    code, _, err = _cli(monkeypatch, capsys, "synthesize", str(config), "--rows", "50", "-o", str(tmp_path / "x.csv"))
    assert code == 1 and "equals a real row" in err
    assert not (tmp_path / "x.csv").exists()


def test_an_unknown_column_in_the_config_is_one_clear_error(tmp_path, monkeypatch, capsys):
    config = _config(tmp_path, CREDIT, column_types={"INCOME": "numeric"})
    code, _, err = _cli(monkeypatch, capsys, "synthesize", str(config), "--rows", "10", "-o", str(tmp_path / "x.csv"))
    assert code == 1 and "'INCOME'" in err and "Traceback" not in err
    assert not (tmp_path / "x.csv").exists()


def test_zero_rows_is_refused(credit_config, monkeypatch, capsys):
    code, _, err = _cli(monkeypatch, capsys, "synthesize", str(credit_config), "--rows", "0")
    assert code == 2 and "--rows" in err


def test_a_config_of_another_task_is_refused_with_the_reason(monkeypatch, capsys, tmp_path):
    code, _, err = _cli(monkeypatch, capsys, "synthesize", str(EXAMPLES / "quickstart.yaml"), "--rows", "10")
    assert code == 1 and "tabular" in err and "Traceback" not in err


def test_an_output_that_is_not_csv_or_parquet_is_refused(credit_config, tmp_path, monkeypatch, capsys):
    args = ["synthesize", str(credit_config), "--rows", "10", "-o", str(tmp_path / "x.xlsx")]
    code, _, err = _cli(monkeypatch, capsys, *args)
    assert code == 1 and ".csv or .parquet" in err


def test_an_output_that_is_the_real_table_is_refused_and_the_table_kept(tmp_path):
    import shutil

    from modelyard.errors import UserError
    from modelyard.synthetic import synthesize
    from modelyard.tasks import load_config

    table = tmp_path / "credit.csv"
    shutil.copy(CREDIT, table)
    before = table.read_bytes()
    (tmp_path / "c.yaml").write_text(
        f"name: c\ntask: tabular_classification\ndata: {{train: {table}, target_column: {TARGET}}}\n"
    )
    with pytest.raises(UserError, match="is the real table"):
        synthesize(load_config(tmp_path / "c.yaml"), 10, table)
    with pytest.raises(UserError, match="--rows must be between 1 and 100,000,000"):
        synthesize(load_config(tmp_path / "c.yaml"), 10**14, tmp_path / "out.csv")
    assert table.read_bytes() == before


def test_columns_of_repeated_personal_data_get_surrogates_and_rarer_ones_a_note(tmp_path):
    from modelyard.synthetic import synthesize
    from modelyard.tasks import load_config

    frame = pd.read_csv(CREDIT).iloc[:400]
    customer = np.arange(len(frame)) // 2  # two rows per customer: no column is unique, so none looks like an ID
    frame["email"] = [f"user{i}@example.com" for i in customer]
    frame["phone"] = [f"1380013{i:04d}" for i in customer]
    frame["note"] = ["call 13800138000" if i < 20 else "ok" for i in range(len(frame))]
    # e-mails in 45% of rows, phones in 45%: no kind in half the rows, yet 90% of them are personal
    contacts = [f"user{i % 20}@example.com" if i % 20 < 9 else f"1390013{i % 20:04d}" for i in range(len(frame))]
    frame["contact"] = [c if i % 20 < 18 else "n/a" for i, c in enumerate(contacts)]
    frame.drop(columns=["ID"]).to_csv(tmp_path / "pii.csv", index=False)
    config = _config(tmp_path, tmp_path / "pii.csv", column_types={"note": "categorical", "contact": "categorical"})
    result = synthesize(load_config(config), 200, tmp_path / "out.csv", "copula")
    synthetic = pd.read_csv(tmp_path / "out.csv", dtype=str)
    assert not set(synthetic["email"]) & set(frame["email"]) and not set(synthetic["phone"]) & set(frame["phone"])
    assert not set(synthetic["contact"]) & set(frame["contact"])
    notes = "\n".join(result.report["notes"])
    assert "column 'email' holds personal data (email in" in notes and "column 'phone' holds personal data" in notes
    assert "column 'contact' holds personal data (email, phone in 287 of 320 rows)" in notes
    assert "column 'note': phone in" in notes and "data.drop_columns" in notes
