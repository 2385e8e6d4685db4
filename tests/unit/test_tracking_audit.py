"""The registry's pure parts: audit-trail replay, model URIs, param flattening, metric naming, the off switch."""

from __future__ import annotations

import pytest

from modelyard.errors import UserError
from modelyard.tracking import audit
from modelyard.tracking.registry import parse_model_uri
from modelyard.tracking.runs import flatten, history_metrics, scalar_metrics


def move(action: str, before: str | None, after: str, alias: str = "champion") -> audit.AliasMove:
    return audit.new_move(alias, action, before, after, "test")  # type: ignore[arg-type]


def test_rollback_target_is_the_version_displaced_by_the_last_promotion():
    trail = [move("promote", None, "1"), move("promote", "1", "2")]
    assert audit.previous_holder(trail) == "1"


def test_successive_rollbacks_walk_back_through_history_instead_of_flip_flopping():
    trail = [move("promote", None, "1"), move("promote", "1", "2"), move("promote", "2", "3")]
    trail.append(move("rollback", "3", "2"))
    assert audit.previous_holder(trail) == "1"


def test_first_promotion_leaves_nothing_to_roll_back_to():
    assert audit.previous_holder([move("promote", None, "1")]) is None
    assert audit.previous_holder([]) is None


def test_trail_reads_entries_in_write_order_and_skips_foreign_or_broken_tags():
    first, second = move("promote", None, "1"), move("promote", "1", "2", alias="challenger")
    tags = {first.key(): first.value(), "owner": "team-a", f"{audit.PREFIX}zzz": "not json"}
    tags[second.key()] = second.value()
    assert [m.to_version for m in audit.read_trail(tags)] == ["1", "2"]
    assert [m.alias for m in audit.read_trail(tags, "challenger")] == ["challenger"]


def test_moves_record_who_and_when():
    entry = move("promote", None, "1")
    assert entry.who and entry.when.endswith("+00:00")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("models:/intents@champion", ("intents", "champion", None)),
        ("models:/intents/3", ("intents", None, "3")),
        ("models:/my.model-v2@challenger", ("my.model-v2", "challenger", None)),
    ],
)
def test_model_uris_name_a_model_and_an_alias_or_version(uri, expected):
    assert parse_model_uri(uri) == expected


@pytest.mark.parametrize("uri", ["models:/", "models:/intents", "models:/a/b/c", "runs:/abc/model"])
def test_malformed_model_uris_are_user_errors_with_the_expected_form(uri):
    with pytest.raises(UserError, match="models:/NAME@ALIAS"):
        parse_model_uri(uri)


def test_config_flattens_to_dotted_param_names():
    flat = flatten({"name": "x", "train": {"epochs": 3, "early_stopping": {"patience": 2}}, "tags": [1, 2]})
    assert flat == {"name": "x", "train.epochs": 3, "train.early_stopping.patience": 2, "tags": [1, 2]}


def test_only_finite_numbers_become_metrics():
    metrics = {"accuracy": 0.9, "per_class": {"a": 1.0}, "loss": float("nan"), "flag": True, "recall@10": 0.5}
    assert scalar_metrics(metrics, "test") == {"test_accuracy": 0.9, "test_recall_at_10": 0.5}


def test_history_lines_flatten_nested_split_metrics():
    entry = {"epoch": 2, "step": 40, "train_loss": 0.7, "validation": {"accuracy": 0.8, "per_class": {}}}
    assert history_metrics(entry) == {"train_loss": 0.7, "epoch": 2.0, "validation_accuracy": 0.8}


@pytest.mark.parametrize(("value", "wanted"), [(None, True), ("on", True), ("0", False), ("OFF", False)])
def test_tracking_can_be_switched_off_by_environment(monkeypatch, value, wanted):
    from modelyard.tracking.store import tracking_wanted

    if value is None:
        monkeypatch.delenv("MODELYARD_TRACKING", raising=False)
    else:
        monkeypatch.setenv("MODELYARD_TRACKING", value)
    assert tracking_wanted() is wanted
