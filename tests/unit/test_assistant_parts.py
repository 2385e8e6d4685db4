"""The assistant's pure parts: the decline threshold, answer attribution and the session memory's bounds."""

from __future__ import annotations

import yaml

from modelyard.learners.assistant import choose_threshold, cite
from modelyard.serving.sessions import SessionStore
from modelyard.tasks import config_from_dict, get_task


def test_the_starter_config_is_a_valid_assistant_config():
    config = config_from_dict(yaml.safe_load(get_task("assistant").starter_config()), "starter")
    assert config.model.backbone == "smollm2-135m" and config.model.decline_threshold is None


def test_the_threshold_separates_answerable_from_unanswerable_scores():
    chosen = choose_threshold([0.6, 0.7, 0.8], [0.2, 0.3, 0.45])
    assert 0.45 < chosen["threshold"] < 0.6
    assert chosen["balanced_accuracy"] == 1.0


def test_among_equally_good_thresholds_the_lowest_is_chosen_so_the_assistant_answers_more():
    # 0.325 (all answerable kept, 2 of 4 declined) and 0.45 (3 of 4 each) both score 0.75
    chosen = choose_threshold([0.5, 0.6, 0.7, 0.35], [0.2, 0.3, 0.4, 0.55])
    assert 0.3 < chosen["threshold"] < 0.35
    assert chosen["balanced_accuracy"] == 0.75


def test_a_target_decline_rate_picks_the_lowest_threshold_that_reaches_it():
    chosen = choose_threshold([0.5, 0.6, 0.7, 0.35], [0.2, 0.3, 0.4, 0.55], decline_rate=0.7)
    assert 0.4 < chosen["threshold"] < 0.5  # declines 0.2, 0.3, 0.4: 75%


def test_sources_name_file_and_section():
    line = cite([{"file": "a.md", "section": "Intro > Setup"}, {"file": "b.txt", "section": ""}])
    assert line == "Sources: [1] a.md § Intro > Setup; [2] b.txt"


def test_a_session_keeps_only_its_last_messages():
    store = SessionStore(turns=2, sessions=10, idle_seconds=60)
    for i in range(3):
        store.remember("s", [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}])
    assert [m["content"] for m in store.history("s")] == ["q2", "a2"]
    assert store.history("other") == []


def test_the_least_recently_used_and_idle_sessions_are_forgotten():
    now = [0.0]
    store = SessionStore(turns=4, sessions=2, idle_seconds=10, clock=lambda: now[0])
    for name in ("a", "b", "c"):
        store.remember(name, [{"role": "user", "content": name}])
    assert store.history("a") == [] and len(store) == 2
    now[0] = 11.0
    assert store.history("c") == [] and len(store) == 0
