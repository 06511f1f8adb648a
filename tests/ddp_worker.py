"""Train a small model with the one loop, on one process or under ``torchrun``: the worker of
tests/test_distributed.py.

    python tests/ddp_worker.py MODEL OUT EPOCHS [STOP_AFTER]
    torchrun --nproc_per_node 2 tests/ddp_worker.py MODEL OUT EPOCHS [STOP_AFTER]

MODEL is ``enn_s2s`` (two QM9 targets of synthetic molecules) or ``hdnnp`` (energies and forces
of EMT clusters, cached symmetry functions); everything is float64 on one thread per process.
The global batch is 8 structures whatever the number of processes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from mpnn.train.distributed import context  # noqa: E402
from mpnn.train.settings import TrainSettings, potential_settings  # noqa: E402
from mpnn.train.trainer import fit  # noqa: E402

BATCH = 8


def property_run(out: Path, epochs: int, stop_after: int | None, ctx) -> None:
    from test_train import small_model, synthetic_set

    from mpnn.train.loader import BatchLoader
    from mpnn.train.properties import fit_standardization
    from mpnn.train.targets import Properties

    data = synthetic_set(40)
    model = small_model(num_targets=2).double()
    fit_standardization(model, data.y[:32, [7, 4]].numpy())
    train = BatchLoader(data, np.arange(32), [7, 4], BATCH, shuffle=True, seed=0, dtype=torch.float64)
    valid = BatchLoader(data, np.arange(32, 40), [7, 4], BATCH, dtype=torch.float64)
    targets = [Properties(["U0", "gap"], model.mean, model.std)]
    settings = TrainSettings(epochs=epochs, batch_size=BATCH, lr=3e-3, patience=None)
    fit(model, targets, train, valid, settings, out, monitor="valid_ratio", ctx=ctx, show_progress=False,
        stop_after=stop_after)  # fmt: skip


def potential_run(out: Path, epochs: int, stop_after: int | None, ctx) -> None:
    from test_train_potential import SMALL, clusters, molecules

    from mpnn.models.hdnnp import set_energy_terms
    from mpnn.train import potential_data as pdata
    from mpnn.train.potential_data import StructureLoader
    from mpnn.train.potential_run import PotentialSpec, new_model, targets_of

    everything = molecules(clusters(40, 0))
    settings = potential_settings(epochs=epochs, batch_size=BATCH, lr=3e-3, force_weight=1.0, patience=None)
    spec = PotentialSpec(train="unused", cutoff=4.0, nodes=[8, 8], symmetry=dict(SMALL), training=settings)
    model = new_model(spec, ["Al", "Cu"])
    train, valid = (
        pdata.build_structures(model, everything[:32]),
        pdata.build_structures(model, everything[32:]),
    )
    sf = model.symmetry_functions
    sf.set_scaling("scale_center", pdata.statistics(train, sf.sizes))
    set_energy_terms(model, *reversed(pdata.energy_terms(train, 2)))
    loaders = StructureLoader(train, BATCH, shuffle=True, seed=0), StructureLoader(valid, 16)
    fit(model, targets_of(settings), *loaders, settings, out, monitor="valid_loss", ctx=ctx,
        show_progress=False, stop_after=stop_after)  # fmt: skip


if __name__ == "__main__":
    torch.set_num_threads(1)
    name, out, epochs = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    stop_after = int(sys.argv[4]) if len(sys.argv) > 4 else None
    ctx = context()
    out.mkdir(parents=True, exist_ok=True)
    {"enn_s2s": property_run, "hdnnp": potential_run}[name](out, epochs, stop_after, ctx)
