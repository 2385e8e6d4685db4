"""Personal data out of the HTML report: every text a section shows from the data (example rows, transcripts,
prompts, category values, captions) goes through the bundle's `privacy` redactor before the page is rendered."""

from __future__ import annotations

from typing import Any

from modelyard.evaluation.sections import Figure, Section, Table, Text, Tokens
from modelyard.privacy import Redactor, redactor_for


def report_redactor(model: Any) -> Redactor | None:
    """The redactor for reports of this model, or None when its config says `privacy.redact` leaves them out."""
    return redactor_for(getattr(getattr(model, "config", None), "privacy", None), "report")


def redact_sections(sections: list[Section], redactor: Redactor | None) -> None:
    """Replace personal data in the sections' texts, in place; numbers and images are left as they are."""
    if redactor is None:
        return
    slots: list[tuple[Any, Any, str]] = []  # (container, key, text): every string a reader sees, in one batch
    for section in sections:
        for block in section.blocks:
            if isinstance(block, Table):
                for row in block.rows:
                    for j, cell in enumerate(row):
                        if isinstance(cell, str):
                            slots.append((row, j, cell))
                        elif isinstance(cell, Figure):
                            slots.append((cell, "caption", cell.caption))
            elif isinstance(block, Text):
                slots.append((block, "text", block.text))
            elif isinstance(block, Figure):
                slots.append((block, "caption", block.caption))
            elif isinstance(block, Tokens):
                slots.append((block, "title", block.title))
    redacted = redactor.redact_many([text for _, _, text in slots])
    for (container, key, text), new in zip(slots, redacted, strict=True):
        if new == text:
            continue
        if isinstance(key, int):
            container[key] = new
        else:
            setattr(container, key, new)
