from pathlib import Path
from types import SimpleNamespace

import pytest

from modelyard.config import EvaluationConfig
from modelyard.errors import ConfigError
from modelyard.tasks import load_config

BASE = """\
name: demo
task: text_classification
data:
  train: data/train.csv
  text_column: text
  label_column: label
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_relative_data_paths_resolve_against_the_config_folder(tmp_path):
    config = load_config(write(tmp_path, BASE))
    assert config.data.train == str((tmp_path / "data" / "train.csv").resolve())


def test_an_unknown_key_names_the_key_and_suggests_the_closest(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, BASE.replace("text_column", "text_colum")))
    assert "unknown key 'text_colum'" in str(err.value)
    assert "did you mean 'text_column'" in str(err.value)


def test_an_unknown_task_lists_the_known_ones(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, BASE.replace("text_classification", "text_clasification")))
    assert "did you mean 'text_classification'" in str(err.value)


def test_a_wrong_value_type_names_the_key(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, BASE + "train:\n  epochs: many\n"))
    assert "train.epochs" in str(err.value)


def test_set_overrides_any_key_with_yaml_typed_values(tmp_path):
    config = load_config(write(tmp_path, BASE), ["train.epochs=2", "model.backbone=tfidf-linear", "train.seed=7"])
    assert (config.train.epochs, config.model.backbone, config.train.seed) == (2, "tfidf-linear", 7)


def test_a_set_without_equals_sign_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(write(tmp_path, BASE), ["train.epochs"])


def test_a_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_task_sections_are_validated_with_the_tasks_own_fields(tmp_path):
    config = load_config(write(tmp_path, BASE + "model:\n  backbone: minilm-l6\n  max_length: 64\n"))
    assert config.model.max_length == 64
    with pytest.raises(ConfigError, match="unknown key 'max_lenght'"):
        load_config(write(tmp_path, BASE + "model:\n  max_lenght: 64\n"))


@pytest.mark.parametrize("value", ["model: tfidf-linear\n", "model: [1, 2]\n"])
def test_a_model_section_that_is_not_a_mapping_is_refused_not_replaced_by_defaults(tmp_path, value):
    with pytest.raises(ConfigError, match="model: Input should be a valid dictionary"):
        load_config(write(tmp_path, BASE + value))


@pytest.mark.parametrize(
    ("override", "place"),
    [
        ("data.text_colum=x", "data.text_colum: unknown key"),
        ("model.max_lenght=3", "model.max_lenght: unknown key"),
        ("data.split.sed=1", "data.split.sed: unknown key"),
        ("data.train=[a.csv, b.csv]", "data.train: Input should be a valid string"),
        ("model.max_length=0", "model.max_length: Input should be greater"),
        ("tain.epochs=1", "tain: unknown key 'tain' (did you mean 'train'?)"),
    ],
)
def test_an_error_inside_a_task_section_names_its_full_key(tmp_path, override, place):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, BASE), [override])
    assert f"config.yaml: {place}" in str(err.value)


def test_split_shares_that_leave_nothing_to_train_on_are_refused_naming_both(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, BASE), ["data.split.validation=0.6", "data.split.test=0.5"])
    assert "data.split: validation (0.6) + test (0.5)" in str(err.value)


def test_overrides_apply_to_a_config_object_and_a_mapping_as_to_a_file(tmp_path):
    from modelyard.tasks import as_config, config_from_dict

    path = write(tmp_path, BASE)
    loaded = load_config(path)
    for config in (path, loaded, loaded.model_dump(mode="json")):
        assert as_config(config, ["data.split.test=0.3"]).data.split.test == 0.3
    assert loaded.data.split.test == 0.1  # the caller's Config is left as it was
    assert as_config(loaded) is loaded
    with pytest.raises(ConfigError, match="config: expected a Config, a mapping or a YAML file path, got NoneType"):
        as_config(None)
    assert config_from_dict(loaded.model_dump(mode="json")) == loaded


def test_validate_applies_overrides_to_a_config_object(banking_slice):
    from conftest import write_config

    import modelyard

    config = load_config(write_config(banking_slice, "tfidf-linear"))
    data = modelyard.validate(config, ["data.split.validation=0.5"])
    assert len(data.splits["validation"]) == len(data.splits["train"])


def test_a_home_relative_data_path_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    config = load_config(write(tmp_path, BASE.replace("data/train.csv", "~/data/train.csv")))
    assert config.data.train == str(tmp_path / "me" / "data" / "train.csv")


def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path):
    with pytest.raises(ConfigError, match=r"key 'train' appears twice \(lines 7 and 9\)"):
        load_config(write(tmp_path, BASE + "train:\n  epochs: 3\ntrain:\n  epochs: 1\n"))


def test_a_merge_key_may_repeat_what_its_anchor_holds(tmp_path):
    text = BASE + "x-defaults: &d {epochs: 3, batch_size: 8}\ntrain:\n  <<: *d\n  epochs: 1\n"
    with pytest.raises(ConfigError) as err:  # the anchor's holder is an unknown key; `epochs` is no repeat
        load_config(write(tmp_path, text))
    assert "x-defaults" in err.value.message and "appears twice" not in err.value.message


def test_a_section_whose_keys_are_all_commented_out_takes_its_defaults(tmp_path):
    config = load_config(write(tmp_path, BASE + "train:\n  # epochs: 3\nevaluation:\n"))
    assert config.train.epochs == type(config.train)().epochs


def test_a_name_yaml_reads_as_a_number_says_to_quote_it(tmp_path):
    with pytest.raises(ConfigError, match=r"YAML read the value as a number, 7: put it in quotes"):
        load_config(write(tmp_path, BASE.replace("name: demo", "name: 007")))


def test_local_encoder_folders_resolve_against_the_config_folder(tmp_path):
    from modelyard.config import resolve_paths

    (tmp_path / "enc").mkdir()
    raw = resolve_paths({"model": {"encoder": "./enc", "text_encoder": "enc"}}, tmp_path)
    assert raw["model"] == {"encoder": str(tmp_path / "enc"), "text_encoder": "enc"}  # a bare name may be a catalog one


@pytest.mark.parametrize(
    ("task", "key", "value", "readers"),
    [
        ("text_classification", "costs", {"false_positive": 1, "false_negative": 5}, "tabular_classification"),
        ("forecasting", "groups", ["Month"], "tabular_classification, tabular_regression"),
        ("tabular_classification", "metrics", ["rouge_l"], "assistant, text_generation"),
    ],
)
def test_an_evaluation_key_the_task_never_reads_is_refused_naming_who_reads_it(task, key, value, readers):
    from modelyard.tasks import check_evaluation, get_task

    config = SimpleNamespace(task=task, evaluation=EvaluationConfig(**{key: value}))
    with pytest.raises(ConfigError, match=rf"^evaluation\.{key}: a {task} model does not use it \(only {readers}"):
        check_evaluation(get_task(task), config)
    check_evaluation(get_task(task), SimpleNamespace(task=task, evaluation=EvaluationConfig(groups=[])))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.format.sep=;;", "data.format.sep: a separator is one character, not ';;'"),
        ("data.format.quotechar=''", "data.format.quotechar: a quote character is one character, not ''"),
        ("data.format.encoding=nosuch", "data.format.encoding: 'nosuch' is not a known text encoding"),
    ],
)
def test_a_format_option_the_reader_cannot_use_is_refused_naming_its_key(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, BASE), [override])


def test_a_single_quoted_yaml_tab_separator_means_a_tab(tmp_path):
    config = load_config(write(tmp_path, BASE + "  format: {sep: '\\t'}\n"))
    assert config.data.format.sep == "\t"


def test_a_file_without_a_header_must_have_its_columns_named(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.format: header: false needs names"):
        load_config(write(tmp_path, BASE), ["data.format.header=false"])


TABLE = """\
name: credit
task: tabular_classification
data: {train: data/credit.csv, target_column: default}
evaluation:
  costs: COSTS
"""


def test_costs_of_zero_for_both_errors_are_refused_as_they_would_flag_no_row(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, TABLE.replace("COSTS", "{false_positive: 0, false_negative: 0}")))
    assert "evaluation.costs: false_positive and false_negative are both 0" in str(err.value)
    assert "at least one a cost above 0" in str(err.value)
    config = load_config(write(tmp_path, TABLE.replace("COSTS", "{false_positive: 0, false_negative: 5}")))
    assert config.evaluation.costs.false_negative == 5


def test_an_infinite_cost_is_refused_naming_its_key(tmp_path):
    with pytest.raises(ConfigError, match=r"evaluation\.costs\.false_negative: Input should be a finite number"):
        load_config(write(tmp_path, TABLE.replace("COSTS", "{false_positive: 1, false_negative: .inf}")))
