"""DP-SGD's parts (training/privacy.py) on real small modules: the accountant against Opacus' own, Poisson
batches, noise-only steps for empty batches, refused layers, and the shared loop training privately."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from opacus.accountants import RDPAccountant
from pydantic import ValidationError

from modelyard.config import PrivacyConfig
from modelyard.errors import ConfigError
from modelyard.training.privacy import ALPHAS, PoissonBatchSampler, PrivateTraining, epsilon_spent, module_problems


def test_the_spent_epsilon_grows_with_steps_and_matches_opacus_rdp_accountant():
    sigma, rate, delta = 0.9, 0.02, 1e-5
    spent = [epsilon_spent(sigma, rate, steps, delta) for steps in (10, 100, 500, 1000)]
    assert spent == sorted(spent) and spent[0] < spent[-1]
    stepped = RDPAccountant()
    for _ in range(500):
        stepped.step(noise_multiplier=sigma, sample_rate=rate)
    assert epsilon_spent(sigma, rate, 500, delta) == pytest.approx(stepped.get_epsilon(delta, alphas=ALPHAS))
    assert epsilon_spent(sigma, rate, 500, delta) <= stepped.get_epsilon(delta)  # more orders only tighten


def test_the_planned_noise_spends_the_target_budget_over_the_planned_steps():
    plan = PrivateTraining.plan(PrivacyConfig(epsilon=8, delta=1e-5), 10_000, 100, 300, processes=1)
    spent = epsilon_spent(plan.noise_multiplier, plan.sample_rate, 300, 1e-5)
    assert 0.97 * 8 <= spent <= 8
    assert epsilon_spent(plan.noise_multiplier, plan.sample_rate, 150, 1e-5) < spent  # early stopping spends less
    tighter = PrivateTraining.plan(PrivacyConfig(epsilon=1, delta=1e-5), 10_000, 100, 300, 1)
    assert tighter.noise_multiplier > plan.noise_multiplier


def test_an_unreachable_budget_or_several_processes_are_refused_naming_the_setting():
    with pytest.raises(ConfigError, match="--nproc"):
        PrivateTraining.plan(PrivacyConfig(), 10_000, 100, 300, processes=2)
    with pytest.raises(ConfigError, match=r"train\.batch_size 500 is not below the 400"):
        PrivateTraining.plan(PrivacyConfig(), 400, 500, 10, 1)


def test_poisson_batches_vary_in_size_average_the_batch_size_and_replay_per_epoch():
    sampler = PoissonBatchSampler(rows=1000, batch_size=20, steps_per_epoch=200)
    sizes = [len(b) for b in sampler]
    assert len(sizes) == len(sampler) == 200
    assert len(set(sizes)) > 5 and abs(np.mean(sizes) - 20) < 2
    assert list(sampler) == list(sampler)
    sampler.set_epoch(1)
    assert [len(b) for b in sampler] != sizes


def test_poisson_batches_and_noise_do_not_follow_the_global_seed():
    torch.manual_seed(0)
    first = list(PoissonBatchSampler(rows=1000, batch_size=20, steps_per_epoch=5))
    torch.manual_seed(0)
    assert list(PoissonBatchSampler(rows=1000, batch_size=20, steps_per_epoch=5)) != first
    steps = []
    for _ in range(2):
        torch.manual_seed(0)
        module = torch.nn.Linear(50, 1, bias=False)
        plan = PrivateTraining.plan(PrivacyConfig(), rows=1000, batch_size=10, steps=50, processes=1)
        _, optimizer = plan.wrap(module, torch.optim.SGD(module.parameters(), lr=1.0), "cpu")
        plan.empty_batch_loss().backward()
        optimizer.step()
        steps.append(module.weight.detach().clone())
        plan.close()
    assert not torch.equal(*steps)


def test_an_empty_batch_takes_a_noise_only_step():
    torch.manual_seed(0)
    module = torch.nn.Linear(400, 1, bias=False)
    torch.nn.init.zeros_(module.weight)
    plan = PrivateTraining.plan(PrivacyConfig(max_grad_norm=2.0), rows=1000, batch_size=10, steps=50, processes=1)
    _, optimizer = plan.wrap(module, torch.optim.SGD(module.parameters(), lr=1.0), "cpu")
    plan.empty_batch_loss().backward()
    optimizer.step()
    moved = module.weight.detach().flatten()
    expected = plan.noise_multiplier * 2.0 / 10  # noise std / expected batch size, at lr 1
    assert moved.std().item() == pytest.approx(expected, rel=0.15)
    plan.close()


def test_batch_norm_is_refused_and_layer_norm_is_not():
    with_bn = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8))
    assert any("BatchNorm1d" in p and "layer norm" in p for p in module_problems(with_bn))
    assert module_problems(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8))) == []
    plan = PrivateTraining.plan(PrivacyConfig(), 1000, 10, 50, 1)
    with pytest.raises(ConfigError, match="batch norm"):
        plan.wrap(with_bn, torch.optim.SGD(with_bn.parameters(), lr=0.1), "cpu")


def test_the_shared_loop_trains_an_mlp_privately_through_empty_batches():
    from modelyard.config import Config, TrainConfig
    from modelyard.learners.tabular_mlp import Arrays, MLPMember
    from modelyard.protocols import PreparedData
    from modelyard.training.loop import fit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    member = MLPMember.build([0, 0, 0], 2, "multiclass", {"hidden_size": 8, "layers": 1, "norm": "layer"}, None)
    member.standardise(x, y)
    splits = {"train": Arrays(x, y), "validation": Arrays(x[:0], y[:0]), "test": Arrays(x[:0], y[:0])}
    train = TrainConfig(epochs=1, batch_size=1, learning_rate=0.01, privacy=PrivacyConfig(delta=1e-3))
    config = Config.model_construct(name="dp", task="t", train=train)
    result = fit(member, config, PreparedData(splits), quiet=True)
    sampler = PoissonBatchSampler(60, 1, 60)
    assert any(len(b) == 0 for b in sampler)  # P(empty) = (1 - 1/60)^60, about 0.36 a step
    assert result.steps == 60 and 0 < result.privacy["epsilon"] <= 8
    assert not hasattr(member.module, "_module")  # the learner keeps its own module, hooks removed


def _fit_tiny_mlp(privacy: PrivacyConfig | None) -> torch.Tensor:
    """The trained weights of a tiny MLP fitted through the shared loop with train.seed 0."""
    from modelyard.config import Config, TrainConfig
    from modelyard.learners.tabular_mlp import Arrays, MLPMember
    from modelyard.protocols import PreparedData
    from modelyard.training.loop import fit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    torch.manual_seed(0)
    member = MLPMember.build([0, 0, 0], 2, "multiclass", {"hidden_size": 8, "layers": 1, "norm": "layer"}, None)
    member.standardise(x, y)
    splits = {"train": Arrays(x, y), "validation": Arrays(x[:0], y[:0]), "test": Arrays(x[:0], y[:0])}
    train = TrainConfig(epochs=1, batch_size=10, learning_rate=0.01, seed=0, privacy=privacy)
    fit(member, Config.model_construct(name="dp", task="t", train=train), PreparedData(splits), quiet=True)
    return torch.cat([p.detach().flatten() for p in member.module.parameters()])


def test_two_private_runs_with_one_seed_differ_and_a_non_private_run_repeats():
    assert not torch.equal(_fit_tiny_mlp(PrivacyConfig(delta=1e-3)), _fit_tiny_mlp(PrivacyConfig(delta=1e-3)))
    assert torch.equal(_fit_tiny_mlp(None), _fit_tiny_mlp(None))


def test_a_sites_dp_sgd_does_not_follow_the_seed_the_server_sends():
    from modelyard.config import Config, TrainConfig
    from modelyard.federated import aggregate
    from modelyard.federated.local import LocalSettings, train_locally
    from modelyard.learners.tabular_mlp import Arrays, MLPMember

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    member = MLPMember.build([0, 0, 0], 2, "multiclass", {"hidden_size": 8, "layers": 1, "norm": "layer"}, None)
    member.standardise(x, y)
    names = aggregate.trainable_names(member.module)
    weights = aggregate.flatten(member.module, names)
    train = TrainConfig(batch_size=10, privacy=PrivacyConfig(delta=1e-3))
    config = Config.model_construct(name="dp", task="t", train=train)
    settings = LocalSettings(epochs=1, learning_rate=0.01, seed=1001)  # what the server sends, and could replay
    data, empty = Arrays(x, y), Arrays(x[:0], y[:0])
    first = train_locally(member, names, weights, data, empty, config, settings).delta
    assert not np.array_equal(train_locally(member, names, weights, data, empty, config, settings).delta, first)


def test_a_private_zero_shot_text_config_names_zero_shot_not_its_pretrained_encoder():
    from modelyard.tasks import config_from_dict, get_task

    raw = {
        "name": "zs",
        "task": "text_classification",
        "data": {"train": "train.csv", "text_column": "text", "label_column": "label"},
        "model": {"backbone": "minilm-l6", "zero_shot": True},
        "train": {"privacy": {"epsilon": 8, "delta": 1e-3}},
    }
    problems = get_task("text_classification").privacy_problems(config_from_dict(raw, "test"))
    assert problems == ["model.zero_shot fits no weights, so there is nothing to train privately; set it to false"]


@pytest.mark.parametrize("key", ["epsilon", "delta", "max_grad_norm"])
@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_an_infinite_or_nan_privacy_budget_is_refused_naming_the_key(key, value):
    """An infinite epsilon would train with Opacus' largest noise and write `Infinity` into metrics.json."""
    with pytest.raises(ValidationError, match=rf"{key}\n  Input should be a finite number"):
        PrivacyConfig(**{key: value})
