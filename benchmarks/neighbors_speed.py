"""Time of the neighbour-list backends against brute force on water-like periodic boxes.

Box: N = 1080 atoms in a cube at 0.1 atoms/A^3 (L = 22.1 A, like liquid water counting H and O),
random positions at least 0.9 A apart (periodic minimum image), cutoff 6.35 A (12 bohr, the n2p2
water potential), about 107 neighbours per atom. Then the same box replicated 2 x 2 x 2 (8640 atoms):
an O(N) list takes about 8 times longer. Brute force is the O(N^2) minimum-image enumeration (valid as
L > 2 cutoff), and its list is checked equal to ours. Also times a batch of 128 small molecules and the
angular triplets of the small box.

    python benchmarks/neighbors_speed.py [--repeats 5] [--skip-slow]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import numpy as np
import torch

from mpnn.neighbors import batch_neighbor_list, neighbor_list, triplets
from mpnn.neighbors_backends import vesin_available, vesin_pairs

CUTOFF = 6.35
DENSITY = 0.1


def water_like_box(n: int, min_dist: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n random points in a periodic cube of density DENSITY, pairwise >= min_dist (minimum image)."""
    side = (n / DENSITY) ** (1 / 3)
    rng = np.random.default_rng(seed)
    pos = np.empty((n, 3))
    count = 0
    while count < n:
        trial = rng.random(3) * side
        diff = pos[:count] - trial
        diff -= side * np.round(diff / side)
        if count == 0 or np.einsum("ij,ij->i", diff, diff).min() >= min_dist**2:
            pos[count] = trial
            count += 1
    return pos, np.eye(3) * side


def replicate(pos: np.ndarray, cell: np.ndarray, reps: int) -> tuple[np.ndarray, np.ndarray]:
    shifts = np.array([(a, b, c) for a in range(reps) for b in range(reps) for c in range(reps)]) @ cell
    return (pos[None, :, :] + shifts[:, None, :]).reshape(-1, 3), cell * reps


def brute_force(pos: np.ndarray, side: float, cutoff: float) -> np.ndarray:
    """(E, 5) sorted rows (i, j, S) by minimum image over all N^2 pairs, in row chunks."""
    rows = []
    for start in range(0, len(pos), 256):
        diff = pos[None, :, :] - pos[start : start + 256, None, :]
        shift = -np.round(diff / side)
        dist2 = np.einsum("abk,abk->ab", diff + shift * side, diff + shift * side)
        a, b = np.nonzero(dist2 < cutoff**2)
        keep = (a + start) != b
        a, b = a[keep], b[keep]
        rows.append(np.column_stack([a + start, b, shift[a, b].astype(np.int64)]))
    return np.concatenate(rows)


def best_time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    result, times = fn(), []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(ln.split(":", 1)[1].strip() for ln in handle if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (best kept)")
    parser.add_argument("--skip-slow", action="store_true", help="no ASE or brute force on the large box")
    args = parser.parse_args()
    print(
        f"machine: {machine()}; vesin usable: {vesin_available()}; cutoff {CUTOFF} A, best of {args.repeats}"
    )

    small, cell = water_like_box(1080, 0.9)
    systems = [("1080 atoms", small, cell), ("8640 atoms (2x2x2)", *replicate(small, cell, 2))]
    per_atom = {}
    for label, pos, box in systems:
        pbc = (True, True, True)
        big = len(pos) > 2000
        print(f"\n{label}: box {box[0, 0]:.2f} A")
        t_ours, (i, j, s) = best_time(lambda: neighbor_list(pos, CUTOFF, box, pbc), args.repeats)  # noqa: B023
        ours = np.column_stack([i, j, s])
        print(f"  neighbor_list (auto, sorted)  {1e3 * t_ours:9.2f} ms   {len(i)} pairs")
        per_atom[label] = t_ours / len(pos)
        if vesin_available():
            t_raw, _ = best_time(
                lambda: vesin_pairs(pos, CUTOFF, box, np.ones(3, bool)),  # noqa: B023
                args.repeats,
            )
            print(f"  vesin alone (unsorted)        {1e3 * t_raw:9.2f} ms")
        if not (big and args.skip_slow):
            t_ase, (ia, ja, sa) = best_time(
                lambda: neighbor_list(pos, CUTOFF, box, pbc, backend="ase"),  # noqa: B023
                max(1, args.repeats // 5),
            )
            same = np.array_equal(np.column_stack([ia, ja, sa]), ours)
            print(f"  neighbor_list (ase, sorted)   {1e3 * t_ase:9.2f} ms   identical to vesin: {same}")
            t_bf, ref = best_time(lambda: brute_force(pos, box[0, 0], CUTOFF), 1)  # noqa: B023
            same = np.array_equal(ref, ours)
            print(f"  brute force (N^2, min image)  {1e3 * t_bf:9.2f} ms   identical: {same}")
    ratio = per_atom[systems[1][0]] / per_atom[systems[0][0]]
    print(f"\ntime per atom, 8640 / 1080 atoms: {ratio:.2f} (1 = linear)")

    rng = np.random.default_rng(1)
    molecules = [rng.random((18, 3)) * 4.0 for _ in range(128)]
    pos = torch.from_numpy(np.concatenate(molecules))
    ptr = torch.arange(0, 18 * 129, 18)
    t_batch, (edge_index, _) = best_time(lambda: batch_neighbor_list(pos, ptr, 5.0), args.repeats)
    edges = edge_index.shape[1]
    print(f"batch_neighbor_list, 128 molecules of 18 atoms, 5 A: {1e3 * t_batch:.2f} ms, {edges} edges")

    edge_index, _ = batch_neighbor_list(
        torch.from_numpy(small),
        torch.tensor([0, 1080]),
        CUTOFF,
        torch.from_numpy(cell)[None],
        torch.ones(1, 3, dtype=torch.bool),
    )
    t_tri, (a, _) = best_time(lambda: triplets(edge_index[1], 1080), args.repeats)
    print(f"triplets of the 1080-atom box: {1e3 * t_tri:.2f} ms, {len(a)} triplets")


if __name__ == "__main__":
    main()
