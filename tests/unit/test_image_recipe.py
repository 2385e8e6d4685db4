"""The photo fine-tuning recipe: evaluation at 8/7 of the training crop (FixRes) and WiSE-FT weight mixing."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from image_helpers import colour_squares
from PIL import Image

from modelyard.config import TrainConfig
from modelyard.learners.image import EFFICIENTNET, ImageClassifierLearner
from modelyard.learners.image_inputs import Preprocessing, preprocessing_for
from modelyard.models import efficientnet
from modelyard.protocols import PreparedData
from modelyard.tasks.image_classification import ImageModelConfig
from modelyard.training.loop import fit


def test_photos_train_on_224_crops_and_are_evaluated_at_256():
    prep = preprocessing_for(EFFICIENTNET, 224, "photo")
    image = Image.new("RGB", (500, 375), (120, 80, 40))
    assert prep.train_transform()(image).shape == (3, 224, 224)
    assert prep.eval_transform()(image).shape == (3, 256, 256)
    assert prep.resize == 293  # the crop is 0.875 of the resized short side, as at 224


@pytest.mark.parametrize(("augment", "eval_size", "expected"), [("none", None, 224), ("photo", 224, 224)])
def test_without_random_crops_or_with_an_explicit_size_there_is_no_enlargement(augment, eval_size, expected):
    prep = preprocessing_for(EFFICIENTNET, 224, augment, eval_size)
    assert (prep.image_size, prep.train_size) == (expected, None)


def test_the_training_crop_survives_the_bundle_and_old_bundles_still_load():
    prep = preprocessing_for(EFFICIENTNET, 192, "photo")
    assert Preprocessing.from_dict(prep.as_dict()) == prep
    old = {k: v for k, v in preprocessing_for(EFFICIENTNET, 224, "none").as_dict().items() if k != "train_size"}
    assert Preprocessing.from_dict(old).train_size is None


def _learner(tmp_path, wise_ft: float) -> tuple[ImageClassifierLearner, pd.DataFrame]:
    """An untrained EfficientNet-Lite0 whose head starts from a probe on 10 + 10 coloured squares."""
    root = colour_squares(tmp_path / "squares", per_class=10)
    frame = pd.DataFrame(
        [{"path": str(p), "label": p.parent.name} for p in sorted(root.glob("*/*.png"))],
    )
    options = ImageModelConfig(wise_ft=wise_ft)
    module = efficientnet.EfficientNetClassifier(2, pretrained=False, frozen_batchnorm=True)
    spec = {"backbone": EFFICIENTNET, "num_classes": 2, "image_size": 64}
    learner = ImageClassifierLearner(
        module, ["blue", "red"], spec, preprocessing_for(EFFICIENTNET, 64, "photo"), options
    )
    learner.start_head_from_probe(frame)
    return learner, frame


def test_wise_ft_keeps_the_chosen_mix_of_the_probe_start_and_the_fine_tuned_weights(tmp_path):
    learner, _ = _learner(tmp_path, wise_ft=0.25)
    start = {k: v.clone() for k, v in learner.module.state_dict().items()}
    with torch.no_grad():
        for param in learner.module.parameters():
            param.add_(1.0)  # what fine-tuning moved
    assert learner.finish_training()
    for name, param in learner.module.named_parameters():
        torch.testing.assert_close(param, start[name] + 0.25, msg=name)


def test_wise_ft_of_one_keeps_the_fine_tuned_weights_untouched(tmp_path):
    learner, _ = _learner(tmp_path, wise_ft=1.0)
    before = {k: v.clone() for k, v in learner.module.state_dict().items()}
    assert not learner.finish_training()
    assert all(torch.equal(v, before[k]) for k, v in learner.module.state_dict().items())


def test_training_reports_the_validation_of_the_weights_finish_training_leaves(tmp_path):
    learner, frame = _learner(tmp_path, wise_ft=1.0)

    def invert_head() -> bool:  # a stand-in that visibly changes every prediction of two classes
        with torch.no_grad():
            for param in learner.module.head.parameters():
                param.neg_()
        return True

    learner.finish_training = invert_head
    data = PreparedData(splits={"train": frame, "validation": frame})
    config = SimpleNamespace(train=TrainConfig(epochs=1, batch_size=10, learning_rate=1e-6, early_stopping=None))
    result = fit(learner, config, data, quiet=True, main_metric="accuracy", greater_is_better=True)
    trained = result.history[-1]["validation"]["accuracy"]
    assert result.validation["accuracy"] == pytest.approx(1 - trained)


def test_layer_decay_slows_each_stage_below_the_head():
    module = efficientnet.EfficientNetClassifier(2, pretrained=False)
    spec = {"backbone": EFFICIENTNET, "num_classes": 2, "image_size": 64}
    options = ImageModelConfig(layer_decay=0.5)
    learner = ImageClassifierLearner(module, ["a", "b"], spec, preprocessing_for(EFFICIENTNET, 64, "photo"), options)
    rate = {id(p): g["lr"] for g in learner.param_groups(1.0, 0.01) for p in g["params"]}
    assert rate[id(module.head[1].weight)] == 1.0
    assert rate[id(module.backbone.conv_head.weight)] == 0.5
    assert rate[id(module.backbone.blocks[6][0].conv_pw.weight)] == 0.25
    assert rate[id(module.backbone.conv_stem.weight)] == 0.5**9
    assert len(rate) == len(list(module.parameters()))


@pytest.mark.parametrize("size", [(20000, 1), (1, 20000), (3000, 40)])
def test_a_strip_of_an_image_is_cropped_before_resizing_not_blown_up(size):
    """The short side is resized to 292: a 20000x1 strip (143 bytes as PNG) once became a 5 GB tensor."""
    prep = Preprocessing(256, 292, (0.5,) * 3, (0.5,) * 3, "light")
    strip = Image.new("RGB", size, (10, 200, 30))
    for transform in (prep.eval_transform(), prep.train_transform()):
        assert tuple(transform(strip).shape) == (3, 256, 256)


def test_the_bound_on_the_aspect_ratio_changes_nothing_the_centre_crop_keeps():
    import numpy as np
    from torchvision.transforms import v2

    prep = Preprocessing(256, 292, (0.5,) * 3, (0.5,) * 3)
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 1000, 3), dtype=np.uint8))  # 5:1
    plain = v2.Compose([v2.ToImage(), v2.Resize(292, antialias=True), v2.CenterCrop(256)])
    expected = v2.Normalize(prep.mean, prep.std)(v2.ToDtype(torch.float32, scale=True)(plain(photo)))
    assert torch.equal(prep.eval_transform()(photo), expected)


def test_the_report_marks_a_wise_ft_learning_curve_as_the_weights_before_averaging_and_adds_the_kept_model():
    """The curve showed validation accuracy 0.9667 while the headline and model card showed the kept 0.9333."""
    from modelyard.evaluation.report import _learning
    from modelyard.evaluation.sections import ReportContext, Table, Text

    spec = {"backbone": EFFICIENTNET, "num_classes": 2, "image_size": 64}
    prep = preprocessing_for(EFFICIENTNET, 64, "photo")
    history = [{"epoch": 1, "step": 4, "train_loss": 0.5, "validation": {"accuracy": 0.9667}}]
    for wise_ft, kept in ((0.5, True), (1.0, False)):
        learner = ImageClassifierLearner(None, ["a", "b"], spec, prep, ImageModelConfig(wise_ft=wise_ft))
        model = SimpleNamespace(learner=learner, task=SimpleNamespace(main_metric="accuracy"))
        context = ReportContext(model, {"validation": {"accuracy": 0.9333}}, history, {})
        blocks = _learning(context).blocks
        rows = next(b for b in blocks if isinstance(b, Table)).rows
        assert (rows[-1][0] == "kept model" and rows[-1][-1] == "0.9333") is kept
        notes = [b.text for b in blocks if isinstance(b, Text) and "WiSE-FT (model.wise_ft 0.5)" in b.text]
        assert bool(notes) is kept
