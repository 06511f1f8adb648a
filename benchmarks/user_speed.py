"""Speed where users wait: four figures, each with its anchor.

* **water box** (in process, float64, 1 thread): energy + forces of n2p2's H2O_RPBE-D3 potential on
  its 1,080-atom box through the ASE calculator (``atoms.get_forces()`` after a 1e-9 A nudge, so
  that every call recomputes: neighbour list, symmetry functions, networks, forces); atoms/s.
  Anchor: n2p2's serial ``Prediction::predict()`` on the same box, measured in the same session
  with ``--n2p2 DIR`` (:mod:`benchmarks.n2p2_anchor`), else about 2,300 atoms/s (quoted).
* **ethanol** (in process, float64, 1 thread): one energy + forces call of the ASE calculator on
  ethanol (9 atoms) with an HDNNP of the default symmetry functions for H, C, O
  (:mod:`mpnn.symmetry.defaults`, cutoff 5 A: 768 functions per element) and 64-64 tanh
  networks (random weights; they do not change the cost); ms per call and MD steps/s.
* **start-up** (whole process, 1 thread): ``python -m mpnn.cli predict H2O_RPBE-D3
  H2O_RPBE-D3/input.data --units bohr,hartree``, wall and CPU (user + system) seconds, best of
  the repeats (the n2p2 folder is evaluated without PyTorch: :mod:`mpnn.potentials.n2p2_predict`);
  anchors: the same command through the PyTorch model, ``python -c "import torch"`` measured here
  and n2p2's whole ``nnp-predict`` (measured with ``--n2p2``, else 0.72 s quoted).
* **compact functions** (in process, float64, 1 thread): energy + forces of the Anisole_SCAN
  potential (types 20 and 22) on its 256-atom structure, per structure, per neighbour pair
  (directed edges within the cutoff), per pair and function of the centre's element and per
  pair of neighbours j < k of a centre (the triplets the angular walks visit); anchor:
  the water box's (types 2 and 3) in the same process; with ``--n2p2``, n2p2's predict() on
  the same structure too.

Each in-process figure is the best of ``--repeats`` calls (at least 500 for ethanol, whose 2 ms
call varies by 10-20 % between runs of 50) after a warm-up call, as wall-clock and as CPU time
of this process (CPU time is the steadier figure on a shared machine).

    python -m benchmarks.user_speed [--repeats 5] [--skip-startup] [--skip-compact] [--n2p2 DIR]

(``DIR``: n2p2's ``nnp-predict`` and ``predict_loop``, built by ``benchmarks/n2p2/build.sh``.)
"""

from __future__ import annotations

import os

# one thread for numpy's BLAS as well (the networks' products), before numpy is imported
for _name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from benchmarks.common import machine  # noqa: E402

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
BOHR, HARTREE = 0.529177210903, 27.211386245988
N2P2_WATER_ATOMS_PER_S = 2300.0
N2P2_PREDICT_S = 0.72


def best_of(call, repeats: int) -> tuple[float, float]:
    """(best wall, best CPU) seconds of ``call()`` over ``repeats`` calls after one warm-up call."""
    call()
    wall = cpu = float("inf")
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        call()
        wall, cpu = min(wall, time.perf_counter() - w), min(cpu, time.process_time() - c)
    return wall, cpu


def calculator_call(atoms, model):
    """A function recomputing energy and forces of ``atoms`` through the ASE calculator."""
    from mpnn.potentials.calculator import MpnnCalculator

    atoms.calc = MpnnCalculator(model)

    def call():
        atoms.positions[0, 0] += 1e-9
        return atoms.get_forces()

    return call


def edges_of(atoms, cutoff: float) -> int:
    from mpnn.data.atoms import atoms_to_molecule, collate_structures

    return int(collate_structures([atoms_to_molecule(atoms, targets=False)], cutoff).edge_index.shape[1])


def triplets_of(atoms, cutoff: float) -> int:
    """Pairs of neighbours (j < k) of one centre within ``cutoff``, summed over the centres: the
    triplets the angular walks visit (every pair of neighbour elements has its functions in both
    potentials timed here)."""
    import numpy as np

    from mpnn.neighbors import neighbor_list

    pbc = atoms.pbc
    centre = neighbor_list(atoms.positions, cutoff, atoms.cell.array if pbc.any() else None, pbc)[0]
    neighbours = np.bincount(centre, minlength=len(atoms))
    return int((neighbours * (neighbours - 1) // 2).sum())


def functions_per_atom(model, atoms) -> float:
    """Mean number of symmetry functions of an atom of ``atoms`` (its element's)."""
    sizes = model.symmetry_functions.sizes
    z = atoms.get_atomic_numbers()
    return sum(sizes[model.elements.index(int(k))] for k in z) / len(z)


def n2p2_example(root: Path, name: str, units: tuple[float, float]):
    """(model, first structure in Angstrom) of an n2p2 example folder."""
    from mpnn.data.atoms import read_structures
    from mpnn.potentials.load import load_potential

    folder = root / "n2p2_examples" / "nnp-predict" / name
    model = load_potential(folder, units)
    atoms = read_structures(folder / "input.data", units=units)[0]
    return model, atoms


def ethanol_model():
    from mpnn.models.hdnnp import HDNNPConfig, hdnnp
    from mpnn.symmetry.defaults import default_symmetry_functions

    elements = ["H", "C", "O"]
    functions = default_symmetry_functions(elements, 5.0)
    torch.manual_seed(0)
    config = HDNNPConfig(elements, functions, cutoff_type=2, nodes=[[64, 64]] * 3, activations=["ttl"] * 3)
    return hdnnp(config).eval(), len(functions[0])


#: ``mpnn predict ARGS...`` through the PyTorch model of the n2p2 folder (the path before
#: :mod:`mpnn.potentials.n2p2_predict`), as a ``python -c`` program taking ARGS from ``sys.argv``
THROUGH_TORCH = (
    "import sys; import mpnn.potentials.n2p2_predict as lean; lean.n2p2_predictor = lambda *a: None; "
    "from mpnn.cli.app import main; raise SystemExit(main(['predict', *sys.argv[1:]]))"
)


def startup(root: Path, repeats: int) -> list[tuple[float, float]]:
    """Best (wall, CPU) seconds of the whole ``mpnn predict`` process, of the same command through
    the PyTorch model and of ``import torch``."""
    folder = root / "n2p2_examples" / "nnp-predict" / "H2O_RPBE-D3"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        arguments = [str(folder), str(folder / "input.data"), "--units", "bohr,hartree"]
        arguments += ["-o", str(Path(tmp) / "out.extxyz")]
        commands = [
            [sys.executable, "-m", "mpnn.cli", "predict", *arguments],
            [sys.executable, "-c", THROUGH_TORCH, *arguments],
            [sys.executable, "-c", "import torch"],
        ]
        for command in commands:
            wall = cpu = float("inf")
            for _ in range(repeats):
                (Path(tmp) / "out.extxyz").unlink(missing_ok=True)
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.perf_counter()
                subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                wall = min(wall, time.perf_counter() - start)
                used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                cpu = min(cpu, used)
            results.append((wall, cpu))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--skip-compact", action="store_true")
    parser.add_argument("--n2p2", type=Path, help="folder with n2p2's nnp-predict and predict_loop")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"# {machine()}")
    print(f"# float64, 1 thread; in process: best of {args.repeats} calls (wall / CPU time)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with tarfile.open(SHARED / "n2p2_examples.tar.xz") as tar:
            members = [m for m in tar.getmembers() if "/nnp-predict/" in m.name]
            tar.extractall(root, members=members, filter="data")

        examples = root / "n2p2_examples" / "nnp-predict"
        water, box = n2p2_example(root, "H2O_RPBE-D3", (BOHR, HARTREE))
        wall, cpu = best_of(calculator_call(box, water), args.repeats)
        n = len(box)
        water_pair = cpu / edges_of(box, water.cutoff)
        water_triplet = cpu / triplets_of(box, water.cutoff)
        water_function = water_pair / functions_per_atom(water, box)
        anchor, how = N2P2_WATER_ATOMS_PER_S, "quoted"
        if args.n2p2 is not None:
            from benchmarks.n2p2_anchor import call_ms

            calls = max(args.repeats, 10)
            anchor = n / (1e-3 * call_ms(args.n2p2, examples / "H2O_RPBE-D3", calls))
            how = f"measured here, best of {calls} predict() calls"
        print(
            f"(a) water box, {n} atoms: {n / wall:,.0f} atoms/s wall, {n / cpu:,.0f} atoms/s CPU; "
            f"vs n2p2 ({how}: {anchor:,.0f}): {n / wall / anchor:.2f}x wall, {n / cpu / anchor:.2f}x CPU"
        )

        from ase.build import molecule

        model, count = ethanol_model()
        wall, cpu = best_of(calculator_call(molecule("CH3CH2OH"), model), max(args.repeats, 500))
        print(
            f"(b) ethanol, {count} functions per element: {1e3 * wall:.2f} ms per call wall "
            f"({1 / wall:,.0f} calls/s), {1e3 * cpu:.2f} ms CPU ({1 / cpu:,.0f} calls/s)"
        )

        if not args.skip_startup:
            (wall, cpu), (path_wall, path_cpu), (torch_wall, torch_cpu) = startup(root, args.repeats)
            anchor, how = N2P2_PREDICT_S, "quoted"
            if args.n2p2 is not None:
                from benchmarks.n2p2_anchor import whole_process_s

                anchor, how = (
                    whole_process_s(args.n2p2, examples / "H2O_RPBE-D3", args.repeats)[0],
                    "measured here",
                )
            print(
                f"(c) mpnn predict, whole process: {wall:.2f} s wall, {cpu:.2f} s CPU; through the "
                f"PyTorch model {path_wall:.2f} s wall, {path_cpu:.2f} s CPU; import torch alone "
                f"{torch_wall:.2f} s wall, {torch_cpu:.2f} s CPU; vs n2p2's nnp-predict ({how}, "
                f"{anchor:.2f} s wall): {wall / anchor:.1f}x the time"
            )

        if not args.skip_compact:
            model, atoms = n2p2_example(root, "Anisole_SCAN", (BOHR, HARTREE))
            wall, cpu = best_of(calculator_call(atoms, model), max(1, args.repeats // 2))
            pairs = edges_of(atoms, model.cutoff)
            per_pair = cpu / pairs
            functions = functions_per_atom(model, atoms)
            per_function = per_pair / functions
            triplets = triplets_of(atoms, model.cutoff)
            per_triplet = cpu / triplets
            print(
                f"(d) compact functions (Anisole_SCAN, {len(atoms)} atoms, {pairs:,} pairs, "
                f"{functions:.0f} functions per atom): {wall:.3f} s wall, {cpu:.3f} s CPU per structure; "
                f"{1e6 * per_pair:.2f} us per pair against {1e6 * water_pair:.2f} us for the Gaussian "
                f"types (water box, {functions_per_atom(water, box):.0f} functions per atom): "
                f"{per_pair / water_pair:.1f}x; per pair and function {1e9 * per_function:.0f} ns against "
                f"{1e9 * water_function:.0f} ns: {per_function / water_function:.2f}x"
            )
            water_triplets = triplets_of(box, water.cutoff)
            print(
                f"    per pair of neighbours j < k ({triplets:,}; the water box {water_triplets:,}): "
                f"{1e9 * per_triplet:.1f} ns against {1e9 * water_triplet:.1f} ns: "
                f"{per_triplet / water_triplet:.2f}x"
            )
            if args.n2p2 is not None:
                from benchmarks.n2p2_anchor import call_ms

                theirs = 1e-3 * call_ms(args.n2p2, examples / "Anisole_SCAN", max(args.repeats, 5))
                print(
                    f"    n2p2's predict() on the same structure: {theirs:.3f} s, "
                    f"{theirs / wall:.1f}x our wall time"
                )


if __name__ == "__main__":
    main()
