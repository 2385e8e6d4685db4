"""Federated building blocks on plain arrays: partitions, secure aggregation, client DP."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.federated import aggregate, partition


def test_dirichlet_partition_skews_labels_and_gives_every_client_rows():
    labels = np.repeat(np.array(["a", "b", "c", "d"]), 250)
    parts = partition.dirichlet(labels, clients=5, alpha=0.5, seed=0)
    assert sorted(np.concatenate(parts).tolist()) == list(range(1000))  # every row once
    assert min(len(p) for p in parts) > 0
    counts = partition.label_counts(labels, parts)
    top_share = [max(c.values()) / sum(c.values()) for c in counts]
    iid_counts = partition.label_counts(labels, partition.iid(1000, 5, seed=0))
    iid_share = [max(c.values()) / sum(c.values()) for c in iid_counts]
    assert np.mean(top_share) > 0.45  # one label dominates a typical site (a quarter each overall)
    assert max(iid_share) < 0.35


def test_dirichlet_refuses_a_non_positive_alpha():
    from modelyard.errors import ConfigError

    with pytest.raises(ConfigError, match="alpha"):
        partition.dirichlet(np.zeros(10), 2, 0.0, 0)


def test_iid_refuses_more_clients_than_rows():
    from modelyard.errors import ConfigError

    with pytest.raises(ConfigError, match="280 training rows cannot give 300 clients"):
        partition.iid(280, 300, 0)


@pytest.mark.parametrize(("clip", "noise"), [(1.0, 0.0), (1.0, -1.0), (0.0, 1.0), (-1.0, 1.0)])
def test_client_dp_needs_a_positive_clip_and_noise(clip, noise):
    from modelyard.errors import ConfigError
    from modelyard.federated.rounds import Settings

    with pytest.raises(ConfigError, match="above 0"):
        Settings(clients=2, dp_clip=clip, dp_noise=noise).check()


def test_secure_aggregation_sum_equals_the_plain_sum():
    rng = np.random.default_rng(1)
    vectors = [rng.normal(0, 3, size=1000) for _ in range(4)]
    keys = [aggregate.key_pair() for _ in vectors]
    masked = []
    for me, vector in enumerate(vectors):
        seeds = {j: aggregate.shared_seed(keys[me][0], keys[j][1], 7) for j in range(4) if j != me}
        masked.append(aggregate.mask(vector, me, seeds))
    plain = np.sum([aggregate.dequantise(aggregate.quantise(v)) for v in vectors], axis=0)
    assert np.array_equal(aggregate.unmask_sum(masked), plain)  # exact: the masks cancel in the ring
    assert np.abs(aggregate.unmask_sum(masked) - np.sum(vectors, axis=0)).max() < 4 * 2.0**-aggregate.SCALE_BITS
    alone = aggregate.dequantise(masked[0])
    assert np.corrcoef(alone, vectors[0])[0, 1] < 0.1  # one masked update says nothing about the update


def test_two_sites_derive_the_same_pairwise_seed_and_a_new_one_each_round():
    (a, a_pub), (b, b_pub) = aggregate.key_pair(), aggregate.key_pair()
    assert aggregate.shared_seed(a, b_pub, 3) == aggregate.shared_seed(b, a_pub, 3)
    assert aggregate.shared_seed(a, b_pub, 3) != aggregate.shared_seed(a, b_pub, 4)


def test_client_dp_clips_the_update_and_accounts_for_more_rounds():
    delta = np.full(10_000, 1.0, dtype=np.float32)  # norm 100
    private = aggregate.clip_and_noise(delta, clip=1.0, noise_multiplier=0.0, rng=np.random.default_rng(0))
    assert np.linalg.norm(private) == pytest.approx(1.0, rel=1e-5)
    noisy = aggregate.clip_and_noise(delta, clip=1.0, noise_multiplier=1.0, rng=np.random.default_rng(0))
    assert np.std(noisy - private) == pytest.approx(1.0, rel=0.05)
    few, many = aggregate.dp_epsilon(5.0, 5, 1e-5), aggregate.dp_epsilon(5.0, 50, 1e-5)
    assert 0 < few < many
    assert aggregate.dp_epsilon(10.0, 5, 1e-5) < few  # more noise, less privacy spent


def test_a_retried_round_never_reuses_a_pairwise_seed():
    a, a_pub = aggregate.key_pair()
    b, b_pub = aggregate.key_pair()
    assert aggregate.shared_seed(a, b_pub, 3, attempt=1) == aggregate.shared_seed(b, a_pub, 3, attempt=1)
    assert aggregate.shared_seed(a, b_pub, 3, attempt=1) != aggregate.shared_seed(a, b_pub, 3)


def test_server_optimisers_move_parameters_and_only_average_buffers():
    weights = np.zeros(4, dtype=np.float32)
    is_parameter = np.array([True, True, True, False])  # the last entry: a batch norm running statistic
    update = np.array([2.0, -4.0, 0.0, 6.0])  # the weighted sum over sites holding 2 samples: average /2
    plain = aggregate.ServerOptimizer("sgd", 1.0, 0.9, is_parameter).step(weights, update, 2)
    assert plain.tolist() == [1.0, -2.0, 0.0, 3.0]  # FedAvg
    momentum = aggregate.ServerOptimizer("momentum", 0.1, 0.9, is_parameter)
    first = momentum.step(weights, update, 2)
    second = momentum.step(first, update, 2)
    assert np.allclose(second[:3] - first[:3], 0.1 * (0.9 + 1) * np.array([1.0, -2.0, 0.0]))  # velocity builds
    assert second[3] == 6.0  # the buffer is averaged each round, never accelerated
    adam = aggregate.ServerOptimizer("adam", 0.01, 0.9, is_parameter).step(weights, update, 2)
    assert np.allclose(adam[:2], [0.01 * 0.1 / (np.sqrt(0.01) + 1e-3), -0.01 * 0.2 / (np.sqrt(0.04) + 1e-3)])
    assert adam[2] == 0.0 and adam[3] == 3.0
