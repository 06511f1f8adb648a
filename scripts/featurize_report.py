"""Featurise the whole QM9 release; report failures, timing and geometry-vs-SMILES agreement.

Every molecule is featurised three ways with :func:`mpnn.data.featurize.featurize_molecule`:

* ``smiles``: candidates (B3LYP-geometry SMILES, GDB-17 SMILES), the way the data set should be
  built;
* ``b3lyp``: the B3LYP-geometry SMILES alone;
* ``geometry``: no SMILES (bonds from the positions only), compared with ``smiles``.

Usage (from the repository root)::

    .venv/bin/python scripts/featurize_report.py [--workers 2] [--json report.json]

The release and ``uncharacterized.txt`` default to ``shared/data`` beside the repository.
Molecules listed in ``uncharacterized.txt`` are featurised too, but tallied separately.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from mpnn.batch import BOND_TYPES
from mpnn.data import qm9
from mpnn.data.featurize import NODE_FEATURES, featurize_molecule
from mpnn.errors import FeaturizationError

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
EXAMPLES = 8  # example indices kept per group


def reason_group(message: str) -> str:
    """A failure message with SMILES, numbers and RDKit details removed, to group failures."""
    message = re.sub(r"'[^']*'", "<smiles>", message)
    message = re.sub(r"\d+(\.\d+)?", "#", message)
    return re.sub(r"(sanitisation failed|assignment failed): .*?(;|$)", r"\1: ...\2", message)


def _timed(symbols: list[str], positions: np.ndarray, smiles) -> tuple:
    """(result or None, failure message or None, CPU seconds)."""
    start = time.process_time()
    try:
        result, error = featurize_molecule(symbols, positions, smiles), None
    except FeaturizationError as err:
        result, error = None, str(err)
    return result, error, time.process_time() - start


def work_smiles(item: tuple) -> dict:
    """Featurise one molecule with its SMILES candidates only (``--smiles-only``)."""
    index, symbols, positions, b3lyp, gdb = item
    ref, ref_err, ref_t = _timed(symbols, positions, (b3lyp, gdb))
    template = None if ref is None else ("b3lyp" if ref.smiles == b3lyp else "gdb")
    return {"index": index, "smiles_error": ref_err, "smiles_time": ref_t,
            "source": None if ref is None else ref.bond_source, "template": template}  # fmt: skip


def work(item: tuple) -> dict:
    """Featurise one molecule the three ways and compare the geometry path with the SMILES one."""
    index, symbols, positions, b3lyp, gdb = item
    ref, ref_err, ref_t = _timed(symbols, positions, (b3lyp, gdb))
    one, one_err, _ = _timed(symbols, positions, b3lyp)
    geo, geo_err, geo_t = _timed(symbols, positions, None)
    out = {
        "index": index,
        "smiles_error": ref_err,
        "smiles_time": ref_t,
        "source": None if ref is None else ref.bond_source,
        "template": None if ref is None else ("b3lyp" if ref.smiles == b3lyp else "gdb"),
        "b3lyp": "failed" if one is None else one.bond_source,
        "b3lyp_error": one_err,
        "geometry_error": geo_err,
        "geometry_time": geo_t,
    }
    if ref is not None and geo is not None:
        same_graph = np.array_equal(ref.bonds, geo.bonds)
        out["same_graph"] = bool(same_graph)
        out["n_bonds"] = len(ref.bond_type)
        out["charged_template"] = bool(re.search(r"[+-]", ref.smiles))
        if same_graph:
            pairs = Counter(zip(ref.bond_type.tolist(), geo.bond_type.tolist(), strict=True))
            out["bond_pairs"] = [[a, b, c] for (a, b), c in pairs.items()]
            out["same_types"] = bool(np.array_equal(ref.bond_type, geo.bond_type))
            diff = (ref.x != geo.x).any(axis=0)
            out["x_columns"] = [NODE_FEATURES[k] for k in np.flatnonzero(diff)]
    return out


def iter_items(release: Path, limit: int | None):
    for k, record in enumerate(qm9.iter_release(release)):
        if limit is not None and k >= limit:
            return
        yield (record.index, record.symbols, record.positions, record.smiles_b3lyp,
               record.smiles_gdb)  # fmt: skip


def summarise(rows: list[dict], wall: float) -> dict:
    """Aggregate counts, failure groups (with example indices), timings and agreement."""
    fails, b3lyp_fails, geo_fails = defaultdict(list), defaultdict(list), defaultdict(list)
    for r in rows:
        if r["smiles_error"]:
            fails[reason_group(r["smiles_error"])].append(r["index"])
        if r.get("b3lyp_error"):
            b3lyp_fails[reason_group(r["b3lyp_error"])].append(r["index"])
        if r.get("geometry_error") and not r["smiles_error"]:
            geo_fails[reason_group(r["geometry_error"])].append(r["index"])
    both = [r for r in rows if "same_graph" in r]
    graph_ok = [r for r in both if r["same_graph"]]
    confusion = Counter()
    for r in graph_ok:
        for a, b, c in r["bond_pairs"]:
            confusion[(BOND_TYPES[a], BOND_TYPES[b])] += c
    n_bonds = sum(confusion.values())
    columns = Counter(c for r in graph_ok for c in r["x_columns"])
    sources = Counter((r["source"], r["template"]) for r in rows if r["source"])
    t_ref = np.array([r["smiles_time"] for r in rows if not r["smiles_error"]]) * 1e3
    t_geo = np.array([r["geometry_time"] for r in rows if r.get("geometry_time")]) * 1e3
    differ = [r for r in graph_ok if not r["same_types"]]

    def groups(table: dict) -> list:
        items = sorted(table.items(), key=lambda kv: -len(kv[1]))
        return [{"reason": k, "count": len(v), "examples": v[:EXAMPLES]} for k, v in items]

    def ms(t: np.ndarray) -> dict:
        if len(t) == 0:
            return {}
        stats = {"mean": t.mean(), "median": np.median(t), "p99": np.percentile(t, 99),
                 "max": t.max()}  # fmt: skip
        return {k: round(float(v), 3) for k, v in stats.items()}

    return {
        "molecules": len(rows),
        "featurised": len(rows) - sum(len(v) for v in fails.values()),
        "failures": groups(fails),
        "sources": [
            {"bond_source": s, "template": t, "count": c}
            for (s, t), c in sorted(sources.items(), key=lambda kv: -kv[1])
        ],  # fmt: skip
        "b3lyp_only": {
            "sources": dict(Counter(r["b3lyp"] for r in rows if "b3lyp" in r)),
            "failures": groups(b3lyp_fails),
        },
        "time_ms_cpu": {"smiles": ms(t_ref), "geometry": ms(t_geo)},
        "wall_s": round(wall, 1),
        "geometry_vs_smiles": {
            "compared": len(rows) - sum(len(v) for v in fails.values()),
            "geometry_failures": groups(geo_fails),
            "same_graph": len(graph_ok),
            "different_graph": [r["index"] for r in both if not r["same_graph"]],
            "same_bond_types": len(graph_ok) - len(differ),
            "different_bond_types": [r["index"] for r in differ],
            "different_bond_types_charged_template": sum(r["charged_template"] for r in differ),
            "same_features": sum(not r["x_columns"] for r in graph_ok),
            "bonds": n_bonds,
            "bonds_same_type": sum(c for (a, b), c in confusion.items() if a == b),
            "bond_confusion": [
                {"smiles": a, "geometry": b, "count": c} for (a, b), c in sorted(confusion.items())
            ],  # fmt: skip
            "feature_columns_differing": dict(columns.most_common()),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", type=Path, default=DATA / "qm9_dsgdb9nsd.xyz.tar.xz")
    parser.add_argument("--uncharacterized", type=Path, default=DATA / "qm9_uncharacterized.txt")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="only the first N files")
    parser.add_argument("--json", type=Path, default=None, help="write the summary here")
    parser.add_argument(
        "--smiles-only", action="store_true", help="SMILES path only (as a data-set build), for its wall time"
    )
    args = parser.parse_args(argv)

    skip = qm9.read_uncharacterized(args.uncharacterized)
    start = time.perf_counter()
    rows = []
    ctx = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    with ctx.Pool(args.workers) as pool:
        job = work_smiles if args.smiles_only else work
        for k, row in enumerate(pool.imap(job, iter_items(args.release, args.limit), 64)):
            rows.append(row)
            if (k + 1) % 10000 == 0:
                print(f"{k + 1} molecules, {time.perf_counter() - start:.0f} s", file=sys.stderr)
    wall = time.perf_counter() - start
    kept = [r for r in rows if r["index"] not in skip]
    dropped = [r for r in rows if r["index"] in skip]
    report = {
        "release": args.release.name,
        "files": len(rows),
        "characterised": summarise(kept, wall),
        "uncharacterised": summarise(dropped, wall),
    }
    text = json.dumps(report, indent=1)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
