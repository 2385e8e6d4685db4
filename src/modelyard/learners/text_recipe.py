"""What a user's own fine-tuning settings mean for a pretrained text encoder: the values are always used as set
(nothing is overridden), but one far outside the range the backbone was measured at gets a line saying why it
is risky and what to set instead, in the data report that `validate` and `train` print before training."""

from __future__ import annotations

from modelyard.config import TrainConfig
from modelyard.learners.text import BACKBONE_DEFAULTS, PRETRAINED_DEFAULTS

# (low, high) of the values each bundled encoder was trained with in this project's measurements (learners/text.py
# BACKBONE_DEFAULTS and the README): minilm-l6 at LR 5e-5 to 2e-4 and 4-12 epochs (BANKING77; issue 21's held-out
# financial news at 5e-5, 4 epochs); multilingual-e5-small at 2e-5 to 1e-4 and 2-6 epochs (waimai_10k). Other
# pretrained encoders: BERT's published fine-tuning range (2e-5 to 5e-5) widened to this project's 1e-4, 2-8 epochs.
MEASURED = {
    "minilm-l6": {"learning_rate": (5e-5, 2e-4), "epochs": (4, 12)},
    "multilingual-e5-small": {"learning_rate": (2e-5, 1e-4), "epochs": (2, 6)},
}
GENERIC = {"learning_rate": (2e-5, 1e-4), "epochs": (2, 8)}
FAR_LR = 3.0  # a learning rate more than 3x outside the measured range
FAR_EPOCHS = 2.0  # epochs more than 2x outside it


def _tuned(backbone: str, key: str):
    return {**PRETRAINED_DEFAULTS, **BACKBONE_DEFAULTS.get(backbone, {})}[key]


def settings_notes(backbone: str, train: TrainConfig) -> list[str]:
    """One line per user-set learning rate or epoch count far outside `backbone`'s measured range."""
    measured = MEASURED.get(backbone, GENERIC)
    notes = []
    lr = train.learning_rate
    low, high = measured["learning_rate"]
    if lr is not None and (lr > high * FAR_LR or lr < low / FAR_LR):
        above = lr > high
        risk = (
            "a pretrained encoder updated this fast tends to overwrite what pretraining taught it, and accuracy can "
            "fall to the TF-IDF baseline or below"
            if above
            else "the encoder barely moves in the planned steps, so the model can stay close to a linear probe"
        )
        hint = "; model.head_init: linear_probe makes a high rate less harmful" if above else ""
        notes.append(
            f"train.learning_rate {lr:g} is far {'above' if above else 'below'} the range {backbone} was measured "
            f"at ({low:g} to {high:g}; tuned default {_tuned(backbone, 'learning_rate'):g}). It is used as set: "
            f"{risk}. Set train.learning_rate: null for the tuned value{hint}"
        )
    epochs = train.epochs
    low, high = measured["epochs"]
    if epochs is not None and train.max_steps is None and (epochs > high * FAR_EPOCHS or epochs < low / FAR_EPOCHS):
        above = epochs > high
        if above:
            stop = train.early_stopping
            risk = (
                f"early stopping on validation (patience {stop.patience}) keeps the best epoch, but the linear "
                "schedule stretched over all of them keeps the rate high for longer"
                if stop
                else "early_stopping is off, so the last epoch is kept even if it has overfit"
            )
        else:
            risk = "the schedule decays to 0 within them and the model may underfit"
        notes.append(
            f"train.epochs {epochs} is far {'above' if above else 'below'} the range {backbone} was measured at "
            f"({low} to {high}; tuned default {_tuned(backbone, 'epochs')}). It is used as set: {risk}. "
            "Set train.epochs: null for the tuned value"
        )
    return notes
