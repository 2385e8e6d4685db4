"""The classes a model learns are train's: validation and test rows of another class cannot be scored."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelyard.errors import DataError

if TYPE_CHECKING:  # pandas loads with the data, not with the config a server reads
    import pandas as pd

SHOWN = 5


def drop_unseen_labels(
    splits: dict[str, pd.DataFrame], labels: list[str], data: Any, warnings: list[str], column: str = "label"
) -> None:
    """Drops validation and test rows whose class train lacks, named in one warning per split. A file the user
    named (`data.validation`, `data.test`) left with no row at all is an error: its metrics would be silently empty."""
    for name in ("validation", "test"):
        frame = splits[name]
        unseen = ~frame[column].isin(labels)
        if not unseen.any():
            continue
        found = sorted(map(str, frame[column][unseen].unique()))
        if unseen.all() and getattr(data, name, None):
            raise DataError(
                f"{getattr(data, name)} (data.{name}): none of its {len(frame)} rows has a label the training data "
                f"has; its labels: {', '.join(found[:SHOWN])}; train's: {', '.join(map(str, labels[:SHOWN]))}",
                f"check data.{name} names the right file, and that its label column is the training file's",
            )
        warnings.append(f"{name}: {int(unseen.sum())} rows dropped: labels not in train ({', '.join(found[:SHOWN])})")
        splits[name] = frame[~unseen]
