"""DP-SGD for the text classifier: which layers train, and whether an encoder's layers can be trained privately.

Only the head and the top encoder layers train: per-example gradients and their noise then cover a few million
parameters instead of the whole encoder, which is what makes DP-SGD affordable on a CPU and on small data.
"""

from __future__ import annotations

from pathlib import Path

from modelyard.learners.text import TextClassifierLearner, layers_below_top
from modelyard.models.encoder_classifier import EncoderClassifier
from modelyard.training.privacy import module_problems


def train_top_layers(module: EncoderClassifier, layers: int) -> None:
    """Freeze everything but the head and the top `layers` encoder layers (Hugging Face layer names)."""
    total = getattr(getattr(module.encoder, "config", None), "num_hidden_layers", 0)
    for name, param in module.named_parameters():
        param.requires_grad_(name.startswith("head.") or layers_below_top(name, total) < layers)


def make_private(learner: TextClassifierLearner, layers: int) -> None:
    """Ready a freshly built learner for DP-SGD: top layers only, and no activation checkpointing (re-running a
    layer's forward in the backward pass would show DP-SGD's hooks each activation twice)."""
    train_top_layers(learner.module, layers)
    learner.recompute = False


def layer_problems(path: Path, layers: int) -> list[str]:
    """What DP-SGD could not train in a Hugging Face encoder folder's top `layers` layers (e.g. batch norm), read
    from its architecture alone: no weights are loaded, so `validate` refuses what `train` would, quickly."""
    from transformers import AutoConfig, AutoModel

    encoder = AutoModel.from_config(AutoConfig.from_pretrained(str(path)))
    module = EncoderClassifier(encoder, encoder.config.hidden_size, 2)
    train_top_layers(module, layers)
    return module_problems(module)
