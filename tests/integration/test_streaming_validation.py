"""`validate --stream` on a 1.5-million-row CSV: every problem counted, in memory far below the file's size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from modelyard.cli import app

ROWS = 1_500_000
WORDS = [
    "card",
    "refund",
    "transfer",
    "balance",
    "payment",
    "account",
    "pin",
    "cash",
    "fee",
    "exchange",
    "rate",
    "top",
    "up",
    "declined",
    "pending",
]
MEASURE = """
import ctypes, json, sys, time
ctypes.CDLL(None).prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE: no transparent huge pages inflating RSS at random
from modelyard.tasks import load_config
from modelyard.data.streaming import scan

def rss_mb(field="VmRSS"):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024

scan(load_config(sys.argv[1], ["data.train=small.csv"]).data)  # loads every library the scan uses
config = load_config(sys.argv[1])  # from here on, what grows is the data's doing
base, cpu = rss_mb(), time.process_time()
report = scan(config.data)
peak = rss_mb("VmHWM")  # not ru_maxrss: Linux carries that over exec from the (large) pytest process
print(json.dumps({"base_mb": base, "peak_mb": peak, "cpu_s": time.process_time() - cpu, "report": report}))
"""


def write_rows(path: Path, rows: int) -> None:
    """`rows` requests over 20 intents, then 3 problems: a row with one field, an empty text, and a repeat of
    row 7 with another label."""
    with path.open("w", encoding="utf-8") as f:
        f.write("text,category\n")
        for start in range(0, rows, 100_000):
            f.writelines(
                f"request {i} about {' '.join(WORDS[(i * k) % len(WORDS)] for k in (1, 3, 5))},intent_{i % 20}\n"
                for i in range(start, min(rows, start + 100_000))
            )
        f.write("only one field\n")
        f.write(",intent_1\n")
        f.write(f"request 7 about {' '.join(WORDS[(7 * k) % len(WORDS)] for k in (1, 3, 5))},intent_3\n")


@pytest.fixture
def config(tmp_path) -> Path:
    write_rows(tmp_path / "big.csv", ROWS)
    write_rows(tmp_path / "small.csv", 100)
    data = {"train": "big.csv", "text_column": "text", "label_column": "category"}
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump({"name": "big", "task": "text_classification", "data": data}))
    return path


@pytest.mark.slow
def test_a_million_row_file_is_validated_in_bounded_memory(config):
    size_mb = (config.parent / "big.csv").stat().st_size / 2**20
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(config)], capture_output=True, text=True, timeout=900, check=True
    )
    measured = json.loads(result.stdout)
    train = measured["report"]["files"]["train"]
    grown = measured["peak_mb"] - measured["base_mb"]
    print(f"\n{ROWS:,} rows, {size_mb:.0f} MB file: peak RSS grew {grown:.0f} MB, {measured['cpu_s']:.1f} CPU-s")
    assert train["read"]["rows"] == ROWS + 2 and train["read"]["skipped"] == 1
    assert train["read"]["problems"] == [f"line {ROWS + 2}: expected 2 fields, found 1"]
    assert train["empty"] == {"text_column": 1, "label_column": 0}
    assert (train["duplicates"], train["conflicting_duplicates"]) == (1, 1)
    assert train["usable_rows"] == ROWS and train["num_labels"] == 20
    assert train["labels"]["intent_3"] == ROWS // 20 + 1
    # measured 110 MB: ~45 MB for one chunk of rows, ~40 bytes a row for the duplicate check at its peak;
    # reading this file whole (read_table + clean_labelled) takes ~950 MB
    assert grown < 200


def test_stream_validation_prints_the_report_as_json(tmp_path):
    write_rows(tmp_path / "big.csv", 1_000)
    data = {"train": "big.csv", "test": "big.csv", "text_column": "text", "label_column": "category"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"name": "s", "task": "text_classification", "data": data}))
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "c.yaml"), "--stream"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["files"]) == {"train", "test"}
    assert report["files"]["test"]["usable_rows"] == 1_000 and len(report["files"]["test"]["sha256"]) == 64
