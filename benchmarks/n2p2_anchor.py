"""n2p2 measured on this machine, as the anchor of :mod:`benchmarks.user_speed` (``--n2p2 DIR``).

``DIR`` holds n2p2's ``nnp-predict`` and our ``predict_loop`` (``benchmarks/n2p2/build.sh``
builds both from an n2p2 checkout, serial, with n2p2's default flags).  Each runs in a copy of
an n2p2 example folder, with one thread:

* :func:`call_ms`: ``predict_loop``'s best time of one ``Prediction::predict()`` call (neighbour
  list, symmetry functions and derivatives, networks, forces) in one process, in process;
* :func:`whole_process_s`: ``nnp-predict 0`` as a whole process (set-up, reading, prediction,
  writing), best wall and CPU (user + system) seconds.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _copy(folder: Path, into: str) -> Path:
    target = Path(into) / folder.name
    shutil.copytree(folder, target)
    return target


def _run(command: list[str], cwd: Path) -> str:
    """stdout of ``command`` run in ``cwd``; a failure raises with the end of its output and of
    the log n2p2 wrote there (the folder is temporary)."""
    run = subprocess.run(command, cwd=cwd, env=_ENV, capture_output=True, text=True)
    if run.returncode != 0:
        logs = "".join(path.read_text(errors="replace")[-1500:] for path in sorted(cwd.glob("*.log")))
        raise RuntimeError(
            f"{command[0]} failed (exit status {run.returncode}) in a copy of {cwd.name}:\n"
            f"{run.stdout[-1500:]}{run.stderr[-1500:]}{logs}"
        )
    return run.stdout


def call_ms(binaries: Path, folder: Path, calls: int) -> float:
    """Best milliseconds of one n2p2 ``predict()`` call on the first structure of ``folder``."""
    with tempfile.TemporaryDirectory() as tmp:
        stdout = _run([str(binaries.resolve() / "predict_loop"), str(calls)], _copy(folder, tmp))
    found = re.search(r"best_ms=([0-9.]+)", stdout)
    if found is None:
        raise RuntimeError(f"predict_loop printed no timing: {stdout!r}")
    return float(found.group(1))


def whole_process_s(binaries: Path, folder: Path, repeats: int) -> tuple[float, float]:
    """Best (wall, CPU) seconds of the whole ``nnp-predict 0`` process in a copy of ``folder``."""
    wall = cpu = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        work = _copy(folder, tmp)
        for _ in range(repeats):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            _run([str(binaries.resolve() / "nnp-predict"), "0"], work)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall = min(wall, time.perf_counter() - start)
            cpu = min(cpu, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return wall, cpu
