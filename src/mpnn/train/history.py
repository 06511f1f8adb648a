"""What a run records per epoch: the rows of ``metrics.csv``, and the same numbers as TensorBoard
scalars (``TrainSettings.tensorboard``).

A history row holds the :func:`history_columns` of the run: ``epoch``, ``elapsed_s`` (seconds),
``lr``, ``train_loss`` (the weighted loss, the targets' squared units), ``valid_loss`` where it is
the monitored score, then every target's training and validation metrics (:mod:`.targets`).
TensorBoard gets every column but ``epoch`` as a scalar of that name at step ``epoch``, written
by rank 0 only; a resumed run writes its whole history again, over what an interrupted process
had logged (``purge_step=1``), so that the event files always say what ``metrics.csv`` says.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mpnn.errors import MpnnError
from mpnn.train.targets import Target

METRICS = "metrics.csv"
#: The folder of the TensorBoard event files in a run folder.
TENSORBOARD = "tensorboard"
#: The first columns of every history row.
BASE_COLUMNS = ("epoch", "elapsed_s", "lr", "train_loss")


def history_columns(targets: Sequence[Target], monitor: str) -> tuple[str, ...]:
    """The columns of ``metrics.csv``: the base columns, ``valid_loss`` when it is the monitored
    score, then every target's training metrics, then their validation metrics."""
    loss = ("valid_loss",) if monitor == "valid_loss" else ()
    train = tuple(c for t in targets for c in t.metrics(None, "train"))
    valid = tuple(c for t in targets for c in t.metrics(None, "valid"))
    return BASE_COLUMNS + loss + train + valid


def history_csv(history: Sequence[dict[str, float]], columns: Sequence[str]) -> str:
    """``metrics.csv``: one row per epoch (``epoch`` an integer, the rest to 6 digits)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in history:
        writer.writerow([row[c] if c == "epoch" else f"{row[c]:.6g}" for c in columns])
    return out.getvalue()


def summary_writer_class() -> Any:
    """:class:`torch.utils.tensorboard.SummaryWriter`; without the ``tensorboard`` package a
    one-line :class:`MpnnError` naming the command that installs it."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise MpnnError(
            "training.tensorboard needs the tensorboard package: pip install tensorboard"
        ) from None
    return SummaryWriter


class TensorBoardLog:
    """The history rows of a run as TensorBoard scalars in ``out/tensorboard/``.

    Args:
        out: the run folder.
        columns: the history columns (every one but ``epoch`` becomes a scalar tag).
        history: the rows already recorded (a resumed run): written again first, replacing what
            the event files held from step 1 on.
    """

    def __init__(self, out: Path, columns: Sequence[str], history: Sequence[dict[str, float]]) -> None:
        writer_class = summary_writer_class()
        self.columns = [c for c in columns if c != "epoch"]
        self.writer = writer_class(str(out / TENSORBOARD), purge_step=1 if history else None)
        for row in history:
            self.add(row, flush=False)
        self.writer.flush()

    def add(self, row: dict[str, float], flush: bool = True) -> None:
        """One history row, as scalars at step ``row["epoch"]``."""
        step = int(row["epoch"])
        for column in self.columns:
            self.writer.add_scalar(column, float(row[column]), step)
        if flush:
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()
