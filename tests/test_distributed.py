"""Training on 2 processes (torchrun, gloo) equals training on 1 with the same global batch.

The reference is the single-process run of the same worker (tests/ddp_worker.py): after the
same number of steps the parameters agree to 1e-6 in float64 (they differ only by the order of
floating-point sums), for enn-s2s on two standardised targets and for an HDNNP trained on
energies and forces (a second backward pass under DDP); a 2-process run resumed on 1 process
matches the straight 1-process run too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mpnn.train.checkpoint import LAST

WORKER = Path(__file__).parent / "ddp_worker.py"
EPOCHS = 3

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available()
    or shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None,
    reason="torch.distributed or torchrun is not available",
)


def run(model: str, out: Path, processes: int, epochs: int = EPOCHS, stop_after: int | None = None) -> None:
    torchrun = str(Path(sys.executable).parent / "torchrun")
    args = [str(WORKER), model, str(out), str(epochs)] + ([str(stop_after)] if stop_after else [])
    if processes == 1:
        command = [sys.executable, *args]
    else:
        command = [torchrun, "--standalone", f"--nproc_per_node={processes}", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def parameters(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / LAST, weights_only=True)["model"]


def assert_same(a: Path, b: Path) -> None:
    """The same steps, weights (float64, to 1e-6) and history (but the times) in ``a`` and ``b``."""
    saved_a, saved_b = torch.load(a / LAST, weights_only=True), torch.load(b / LAST, weights_only=True)
    assert saved_a["state"]["step"] == saved_b["state"]["step"] > 0
    for name, value in saved_a["model"].items():
        other = saved_b["model"][name]
        if value.is_floating_point():
            assert value.dtype == torch.float64, name
            torch.testing.assert_close(value, other, rtol=0, atol=1e-6, msg=name)
    for row_a, row_b in zip(saved_a["state"]["history"], saved_b["state"]["history"], strict=True):
        for key, value in row_a.items():
            if key != "elapsed_s":
                assert value == pytest.approx(row_b[key], rel=1e-6, abs=1e-9), key


@pytest.mark.parametrize("model", ["enn_s2s", "hdnnp"])
def test_two_processes_equal_one_and_resume_on_one(tmp_path, model) -> None:
    run(model, tmp_path / "one", 1)
    run(model, tmp_path / "two", 2)
    assert_same(tmp_path / "one", tmp_path / "two")
    # a 2-process run stopped after one epoch and resumed on 1 process
    run(model, tmp_path / "resumed", 2, stop_after=1)
    early = parameters(tmp_path / "resumed")
    assert torch.load(tmp_path / "resumed" / LAST, weights_only=True)["state"]["epoch"] == 1
    run(model, tmp_path / "resumed", 1)
    assert_same(tmp_path / "one", tmp_path / "resumed")
    # the weights moved after epoch 1 by far more than the tolerance: the comparisons are not vacuous
    late = parameters(tmp_path / "one")
    assert max(float((late[k] - v).abs().max()) for k, v in early.items() if v.is_floating_point()) > 1e-3


def test_train_potential_under_torchrun_equals_one_process(tmp_path) -> None:
    """The command itself: ``torchrun -m mpnn.cli train-potential`` writes the run once, and it
    equals the single-process run."""
    import ase.io
    from test_train_potential import SMALL_OPTIONS, clusters

    data = tmp_path / "train.xyz"
    ase.io.write(data, clusters(24, 0), format="extxyz")
    args = [
        "train-potential",
        str(data),
        "--valid",
        "0.25",
        "--epochs",
        "2",
        "--batch-size",
        "6",
        *SMALL_OPTIONS,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for processes, out in ((1, tmp_path / "one"), (2, tmp_path / "two")):
        launcher = [sys.executable] if processes == 1 else [str(Path(sys.executable).parent / "torchrun"),
                    "--standalone", f"--nproc_per_node={processes}"]  # fmt: skip
        command = [*launcher, "-m", "mpnn.cli", *args, "--quiet", "--out", str(out)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.count("errors of") == 1  # one process printed the table
    assert_same(tmp_path / "one", tmp_path / "two")
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == sorted(
        p.name for p in (tmp_path / "two").iterdir()
    )
