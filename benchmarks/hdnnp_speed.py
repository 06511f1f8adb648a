"""Energy + forces throughput of the n2p2 water potential (H2O_RPBE-D3) on its 1080-atom box.

End to end, as a user calls it: neighbour list (O(N)), symmetry functions, networks, forces by
backpropagation.  Sizes: the box of n2p2's example (1080 atoms) and that box replicated 2x2x2
(8640 atoms).  Rows:

* ``compiled``: the default CPU path (numba kernels for the angular sums), float64 and float32;
* ``pytorch``: the same model with the angular sums as tensors over the triplet list (the path
  that runs on any device, and the anchor of the ratios), float64.

* ``sf_mpnn T=2``: with ``--sf-mpnn``, the SF-MPNN of the same symmetry functions with T - 1 learned
  steps (``--steps``, width ``--features``, messages within ``--message-cutoff``; random learned
  weights, which do not change the cost), compiled path; its ratio column is against the
  HDNNP's compiled row of the same dtype.

n2p2 itself (serial C++) does about 2,300 atoms/s at 1080 atoms and about 520 end to end at 8640
atoms (its neighbour list is O(N^2)); those two figures are quoted, not measured here.  float32
rows also print their largest deviation from float64 (energy per atom, force component).

    python -m benchmarks.hdnnp_speed [--repeats 3] [--threads 2] [--skip-pytorch]
        [--sf-mpnn [--steps 2] [--features 32] [--message-cutoff 4.0]]
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


def sf_mpnn_of(hdnnp, steps: int, features: int, message_cutoff: float | None):
    """The SF-MPNN with the HDNNP's symmetry functions (and scaling, energy terms) and T = ``steps``.

    ``message_cutoff`` is in Angstrom; the model's length unit is the HDNNP's (Bohr here)."""
    from mpnn.models import build_model

    unit = hdnnp.config["length_unit"]
    config = {**hdnnp.config, "model": "sf_mpnn", "steps": steps, "features": features}
    cutoff = None if message_cutoff is None else message_cutoff / unit
    config.update(embedding=[features], message_cutoff=cutoff)
    torch.manual_seed(0)
    model = build_model(config)
    functions = {k: v for k, v in hdnnp.state_dict().items() if k.startswith("net.messages.0.")}
    model.load_state_dict(functions, strict=False)
    with torch.no_grad():
        model.update.energy_scale.copy_(hdnnp.update.energy_scale)
        model.update.offsets.copy_(hdnnp.update.offsets)
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-pytorch", action="store_true", help="skip the (slow) PyTorch-path rows")
    parser.add_argument("--sf-mpnn", action="store_true", help="add the SF-MPNN rows (same functions)")
    parser.add_argument("--steps", type=int, default=2, help="T of the SF-MPNN")
    parser.add_argument("--features", type=int, default=32, help="state width of the SF-MPNN")
    parser.add_argument("--message-cutoff", type=float, default=4.0, help="Angstrom (SF-MPNN messages)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(SHARED / "n2p2_examples.tar.xz") as tar:
            tar.extractall(tmp, filter="data")
        folder = Path(tmp) / "n2p2_examples" / "nnp-predict" / "H2O_RPBE-D3"
        model = load_potential(folder, (0.529177210903, 27.211386245988))  # bohr, hartree
        other = sf_mpnn_of(model, args.steps, args.features, args.message_cutoff) if args.sf_mpnn else None
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
        hdnnp_rates = {dtype: rate for path, dtype, rate, _ in rows if path == "compiled"}
        for path, dtype, rate, result in rows:
            deviation = ""
            if dtype == torch.float32:
                de = (result["energy"].double() - reference["energy"]).abs().max().item() / n
                df = (result["forces"].double() - reference["forces"]).abs().max().item()
                deviation = f"|dE|/atom {de:.1e} eV, |dF| {df:.1e} eV/A"
            ratio = f"{rate / anchor:10.1f}" if anchor else f"{'-':>10}"
            name = str(dtype).replace("torch.", "")
            print(f"{n:>6} {path:>9} {name:>8} {rate:9.0f} {ratio} {rate / N2P2_QUOTED[n]:8.2f}  {deviation}")
        if other is not None:
            label = f"sf_mpnn T={args.steps}"
            for dtype in (torch.float64, torch.float32):
                rate, _ = run(other, atoms, dtype, args.repeats)
                name = str(dtype).replace("torch.", "")
                print(
                    f"{n:>6} {label:>9} {name:>8} {rate:9.0f} {rate / hdnnp_rates[dtype]:10.2f} "
                    f"{rate / N2P2_QUOTED[n]:8.2f}  (ratio: vs the HDNNP compiled {name}; "
                    f"time {hdnnp_rates[dtype] / rate:.2f}x)"
                )
            other.to(torch.float64)
    model.to(torch.float64)


if __name__ == "__main__":
    main()
