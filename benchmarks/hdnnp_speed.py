"""Energy + forces throughput of the n2p2 water potential (H2O_RPBE-D3) on its 1080-atom box.

End to end, as a user calls it: neighbour list (O(N)), symmetry functions, networks, forces by
backpropagation.  Sizes: the box of n2p2's example (1080 atoms) and that box replicated 2x2x2
(8640 atoms).  Rows:

* ``compiled``: the default CPU path (numba kernels for the angular sums), float64 and float32;
* ``pytorch``: the same model with the angular sums as tensors over the triplet list (the path
  that runs on any device, and the anchor of the ratios), float64.

n2p2 itself (serial C++) does about 2,300 atoms/s at 1080 atoms and about 520 end to end at 8640
atoms (its neighbour list is O(N^2)); those two figures are quoted, not measured here.  float32
rows also print their largest deviation from float64 (energy per atom, force component).

    python benchmarks/hdnnp_speed.py [--repeats 3] [--threads 2] [--skip-pytorch]
"""

from __future__ import annotations

import argparse
import tarfile
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import machine
from mpnn.data.atoms import collate_structures, read_structures
from mpnn.potentials.forces import evaluate
from mpnn.potentials.load import load_potential

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
N2P2_QUOTED = {1080: 2300.0, 8640: 520.0}


def run(model, atoms, dtype: torch.dtype, repeats: int) -> tuple[float, dict]:
    model = model.to(dtype)
    best, result = float("inf"), None
    for _ in range(repeats + 1):  # the first call compiles / warms up
        start = time.perf_counter()
        batch = collate_structures([atoms], model.cutoff).to(dtype=dtype)
        result = evaluate(model, batch)
        best = min(best, time.perf_counter() - start)
    return len(atoms) / best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-pytorch", action="store_true", help="skip the (slow) PyTorch-path rows")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(SHARED / "n2p2_examples.tar.xz") as tar:
            tar.extractall(tmp, filter="data")
        folder = Path(tmp) / "n2p2_examples" / "nnp-predict" / "H2O_RPBE-D3"
        model = load_potential(folder, (0.529177210903, 27.211386245988))  # bohr, hartree
        box = read_structures(folder / "input.data")[0]
    box.positions *= 0.529177210903
    box.set_cell(box.cell.array * 0.529177210903)
    print(f"# {machine()}")
    print(f"# H2O_RPBE-D3, energy + forces, end to end, best of {args.repeats}")
    print(
        f"{'atoms':>6} {'path':>9} {'dtype':>8} {'atoms/s':>9} {'vs pytorch':>10} {'vs n2p2':>8}  deviation"
    )
    for atoms in (box, box.repeat((2, 2, 2))):
        n = len(atoms)
        rows = []
        if not args.skip_pytorch:
            model.symmetry_functions.compiled = False
            rows.append(("pytorch", torch.float64, *run(model, atoms, torch.float64, 1)))
        model.symmetry_functions.compiled = True
        rows.append(("compiled", torch.float64, *run(model, atoms, torch.float64, args.repeats)))
        rows.append(("compiled", torch.float32, *run(model, atoms, torch.float32, args.repeats)))
        anchor = rows[0][2] if not args.skip_pytorch else None
        reference = rows[-2][3]
        for path, dtype, rate, result in rows:
            deviation = ""
            if dtype == torch.float32:
                de = (result["energy"].double() - reference["energy"]).abs().max().item() / n
                df = (result["forces"].double() - reference["forces"]).abs().max().item()
                deviation = f"|dE|/atom {de:.1e} eV, |dF| {df:.1e} eV/A"
            ratio = f"{rate / anchor:10.1f}" if anchor else f"{'-':>10}"
            name = str(dtype).replace("torch.", "")
            print(f"{n:>6} {path:>9} {name:>8} {rate:9.0f} {ratio} {rate / N2P2_QUOTED[n]:8.2f}  {deviation}")
    model.to(torch.float64)


if __name__ == "__main__":
    main()
