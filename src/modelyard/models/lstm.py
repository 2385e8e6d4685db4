"""A stacked LSTM forecaster with a direct multi-horizon head, in one readable file (nanoGPT style).

The model sees a window of `context_length` past steps, already normalised by the task (values relative to the
last one, divided by the series' scale), and predicts all `horizon` future steps at once in the same units. A
linear shortcut from the raw window to the output carries trend and seasonal shape that the recurrent path
then corrects; it lets the model beat seasonal naive even on short series such as monthly airline passengers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass
class LSTMConfig:
    context_length: int = 24
    horizon: int = 12
    inputs: int = 1  # channels per time step: the target, then any covariates
    hidden_size: int = 64
    layers: int = 2
    dropout: float = 0.1

    def as_dict(self) -> dict:
        return asdict(self)


class LSTMForecaster(nn.Module):
    def __init__(self, config: LSTMConfig) -> None:
        super().__init__()
        self.config = config
        self.lstm = nn.LSTM(
            input_size=config.inputs,
            hidden_size=config.hidden_size,
            num_layers=config.layers,
            dropout=config.dropout if config.layers > 1 else 0.0,
            batch_first=True,
        )
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.horizon)  # direct: one output per future step
        self.shortcut = nn.Linear(config.context_length, config.horizon)  # linear in the target's past values
        nn.init.zeros_(self.shortcut.weight)
        nn.init.zeros_(self.shortcut.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, L, C) normalised context; channel 0 is the target
        out, _ = self.lstm(x)  # (B, L, hidden)
        last = self.drop(out[:, -1])  # (B, hidden): the state after the last observed step
        return self.head(last) + self.shortcut(x[..., 0])  # (B, horizon)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
