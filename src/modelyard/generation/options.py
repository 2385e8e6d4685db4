"""The knobs of one generation request, validated once (CLI, Python API and HTTP routes share them)."""

from __future__ import annotations

from pydantic import Field, field_validator

from modelyard.config import StrictModel


class GenerationOptions(StrictModel):
    """Sampling settings; temperature 0 (or top_k 1) decodes greedily and is deterministic."""

    max_new_tokens: int = Field(128, ge=1, le=8192, description="stop after this many generated tokens")
    temperature: float = Field(1.0, ge=0.0, le=10.0, description="0 picks the most likely token every time")
    top_k: int | None = Field(None, ge=1, description="sample among the k most likely tokens only")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="nucleus sampling: smallest set with mass p")
    repetition_penalty: float = Field(1.0, gt=0.0, le=10.0, description=">1 discourages tokens already present")
    stop: list[str] = Field(default_factory=list, max_length=8, description="end the text before any of these")
    seed: int | None = Field(None, ge=0, le=2**64 - 1, description="makes sampling reproducible")

    @field_validator("stop", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        if value is None:
            return []
        return [value] if isinstance(value, str) else value

    @field_validator("stop")
    @classmethod
    def _no_empty(cls, value: list[str]) -> list[str]:
        if any(not s for s in value):
            raise ValueError("stop sequences must not be empty")
        return value

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0 or self.top_k == 1
