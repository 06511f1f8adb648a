"""Memory and speed of structure stores: converting QM9, a >= 4 GB store, one DataLoader epoch of each.

    python -m benchmarks.data_memory [--size-gb 4] [--workers 2] [--batch-size 128] [--max-minutes 25]

1. ``convert``: the bundled 4,000-molecule QM9 subset and the full QM9 release (../shared/data,
   uncharacterised molecules dropped) through ``mpnn data convert`` (featurisation in ``--workers``
   processes, records written in bounded transactions): wall time, size on disk, peak memory.
2. ``replicate``: the QM9 store copied record by record (read, checked, re-encoded, written) as
   many times as needed for a store of at least ``--size-gb`` GiB.
3. ``iterate``: one shuffled epoch over each store with a ``torch.utils.data.DataLoader``
   (2 worker processes, :class:`mpnn.data.store.ShuffleSampler`, batches of ``--batch-size``
   collated by :func:`mpnn.batch.collate` into complete graphs, as training reads them):
   structures per second, from the first batch requested to the last one received (worker start
   included), and peak memory. The QM9 store is read a second time with its mapping never
   released (``window`` infinite), to show what the re-opening costs and saves. When a full epoch
   of the large store would take longer than ``--max-minutes``, a shuffled sample of as many
   structures as fit is read, drawn from the whole file, and the projected full epoch is printed.

Every measurement runs in its own fresh Python process. After its imports the process resets its
peak resident set (``/proc/self/clear_refs``) and records its resident set as its baseline; a
thread then reads, every 0.1 s, VmRSS and VmHWM (the kernel's peak) of the process and of every
descendant (each child's peak is reset when first seen, its resident set then is its baseline).
"all processes" is the sum over processes of (peak - baseline): each one's own peak, summed, an
upper bound of their simultaneous peak. Resident memory includes the mapped pages of the store
file; the sampled peaks of its two parts (RssAnon: private heap, RssFile: mapped files) are
printed too. Linux only. Files go to a temporary folder under ``--dir`` (default /tmp), deleted at the end.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
MB = 2**20


# -- memory ---------------------------------------------------------------------------------------
_FIELDS = ("VmRSS", "VmHWM", "RssAnon", "RssFile")


def _status(pid: int) -> dict[str, int] | None:
    """VmRSS, VmHWM, RssAnon (private heap) and RssFile (mapped files) of ``pid`` in bytes (None
    once it has exited)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in _FIELDS:
            values[name] = int(rest.split()[0]) * 1024
    return values if len(values) == len(_FIELDS) else None


def _descendants(pid: int) -> list[int]:
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *_descendants(child)]
    return found


def _reset_peak(pid: int) -> None:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:  # an old kernel: the peak then counts from the process's start
        pass


class Sampler(threading.Thread):
    """Peak resident memory above baseline of this process and its descendants."""

    def __init__(self, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.interval, self.stop = interval, threading.Event()
        self.base: dict[int, dict[str, int]] = {}
        self.peak: dict[int, int] = {}
        self.simultaneous = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
        _reset_peak(os.getpid())
        self.sample()

    def sample(self) -> None:
        total = dict.fromkeys(self.simultaneous, 0)
        for pid in [os.getpid(), *_descendants(os.getpid())]:
            if pid not in self.base:
                _reset_peak(pid)
            status = _status(pid)
            if status is None:
                continue
            base = self.base.setdefault(pid, status)
            self.peak[pid] = max(self.peak.get(pid, 0), status["VmHWM"], status["VmRSS"])
            for name in total:
                total[name] += status[name] - base[name]
        for name, value in total.items():
            self.simultaneous[name] = max(self.simultaneous[name], value)

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            self.sample()

    def result(self) -> dict[str, float]:
        self.stop.set()
        self.join()
        self.sample()
        me = os.getpid()
        return {
            "processes": len(self.base),
            "peak_all_mb": sum(self.peak[p] - self.base[p]["VmRSS"] for p in self.base) / MB,
            "peak_simultaneous_mb": self.simultaneous["VmRSS"] / MB,
            "peak_heap_mb": self.simultaneous["RssAnon"] / MB,
            "peak_file_mb": self.simultaneous["RssFile"] / MB,
            "peak_main_mb": (self.peak[me] - self.base[me]["VmRSS"]) / MB,
            "baseline_main_mb": self.base[me]["VmRSS"] / MB,
        }


# -- the measured phases (each in a fresh process) ----------------------------------------------------
def collate_complete(molecules):
    from mpnn.batch import collate

    return collate(molecules, graph="complete")


def measure(phase: str, args: argparse.Namespace) -> dict:
    import torch

    from mpnn.batch import collate  # noqa: F401 (imported before the baseline, as the workers use it)
    from mpnn.cli import main
    from mpnn.data.store import ShuffleSampler, StructureStore
    from mpnn.data.store_writer import StoreWriter

    sampler = Sampler()
    sampler.start()
    start = time.perf_counter()
    out: dict = {"phase": phase}
    if phase == "convert":
        code = main(["data", "convert", args.src, args.dest, "--quiet", "--workers", str(args.workers)])
        if code != 0:
            raise SystemExit(f"conversion of {args.src} failed")
        out["structures"] = len(StructureStore(args.dest))
    elif phase == "replicate":
        source = StructureStore(args.src)
        with StoreWriter(
            args.dest,
            target_names=source.target_names,
            target_units=source.target_units,
            source=f"{args.copies} copies of {source.meta['source']}",
        ) as writer:
            for _ in range(args.copies):
                for i in range(len(source)):
                    writer.add(source[i])
        out["structures"] = writer.count
    else:
        store = StructureStore(args.src, **({"window": args.window} if args.window else {}))
        order = ShuffleSampler(len(store), seed=0)  # a permutation held as int32, not Python ints
        if args.sample:  # the first ``sample`` indices of a permutation of the whole store
            order = itertools.islice(order, args.sample)
        loader = torch.utils.data.DataLoader(
            store, batch_size=args.batch_size, sampler=order, num_workers=2, collate_fn=collate_complete
        )
        batches = iter(loader)
        count = edges = 0
        for batch in batches:
            count += batch.num_graphs
            edges += batch.num_edges
        sampler.sample()  # the workers are still alive
        del batches
        out.update(structures=count, of=len(store), edges=edges)
    out["seconds"] = time.perf_counter() - start
    out["bytes"] = Path(args.dest if phase != "iterate" else args.src).stat().st_size
    out.update(sampler.result())
    return out


def run_phase(phase: str, **options) -> dict:
    command = [sys.executable, "-m", "benchmarks.data_memory", "--measure", phase]
    for name, value in options.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        raise SystemExit(f"{phase} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {phase} {Path(options.get('dest') or options['src']).name}: {result}", flush=True)
    return result


# -- the report -------------------------------------------------------------------------------------
def table(rows: list[tuple[str, dict]]) -> str:
    lines = [
        "| what is timed | structures | store size | wall s | structures/s | peak above baseline, all "
        "processes (MB) | sampled: heap / mapped files (MB) | main process (MB) | processes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows:
        done = f"{r['structures']:,}" + (
            f" of {r['of']:,}" if r.get("of", r["structures"]) != r["structures"] else ""
        )
        lines.append(
            f"| {name} | {done} | {r['bytes'] / 2**30:.2f} GiB | {r['seconds']:.1f} | "
            f"{r['structures'] / r['seconds']:,.0f} | {r['peak_all_mb']:.0f} | {r['peak_heap_mb']:.0f} / "
            f"{r['peak_file_mb']:.0f} | {r['peak_main_mb']:.0f} | {r['processes']} |"
        )
    return "\n".join(lines)


def driver(args: argparse.Namespace) -> None:
    from benchmarks.common import machine
    from mpnn.data.qm9 import bundled_release_path

    release = SHARED / "qm9_dsgdb9nsd.xyz.tar.xz"
    if not release.is_file():
        raise SystemExit(f"{release}: the QM9 release is not present (see ../shared/data/SOURCES.md)")
    folder = Path(tempfile.mkdtemp(prefix="mpnn-data-memory-", dir=args.dir))
    rows = []
    try:
        small, qm9, large = folder / "bundled.lmdb", folder / "qm9.lmdb", folder / "large.lmdb"
        print(f"{machine()}; files in {folder}", flush=True)
        convert = run_phase("convert", src=bundled_release_path(), dest=small, workers=args.workers)
        rows.append(("convert: bundled QM9 subset (xz tar) -> store", convert))
        convert = run_phase("convert", src=release.resolve(), dest=qm9, workers=args.workers)
        rows.append(("convert: QM9 release (xz tar) -> store", convert))
        copies = math.ceil(args.size_gb * 2**30 / convert["bytes"])
        rows.append(
            (
                f"replicate: {copies} copies of the QM9 store",
                run_phase("replicate", src=qm9, dest=large, copies=copies),
            )
        )
        epoch = run_phase("iterate", src=qm9, batch_size=args.batch_size)
        rows.append(("iterate: QM9 store, one shuffled epoch", epoch))
        mapped = run_phase("iterate", src=qm9, batch_size=args.batch_size, window=2**50)
        rows.append(("iterate: QM9 store, never unmapped (window = infinity)", mapped))
        total = len_of(large)
        rate = epoch["structures"] / epoch["seconds"]
        projected = total / rate / 60
        sample = total if projected <= args.max_minutes else int(rate * args.max_minutes * 60)
        result = run_phase("iterate", src=large, batch_size=args.batch_size, sample=sample)
        name = (
            "iterate: large store, one shuffled epoch"
            if sample == total
            else "iterate: large store, shuffled sample"
        )
        rows.append((name, result))
        print()
        print(table(rows))
        print(
            f"\nprojected full epoch of the large store at the QM9 store's rate: {projected:.1f} min; "
            f"at its own measured rate: {total / (result['structures'] / result['seconds']) / 60:.1f} min"
        )
        print(
            "precision: stored values as in the files (positions float64, node features float32); "
            "threads: DataLoader workers 1 torch thread each, featurisation in "
            f"{args.workers} processes; page cache warm (each store was just written)"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        print(f"removed {folder}")


def len_of(path: Path) -> int:
    from mpnn.data.store import StructureStore

    return len(StructureStore(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-gb", type=float, default=4.0, help="size of the large store (GiB)")
    parser.add_argument("--workers", type=int, default=2, help="featurisation processes of the conversion")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--max-minutes", type=float, default=25.0, help="longest epoch over the large store")
    parser.add_argument("--dir", default="/tmp", help="where the stores are written (deleted at the end)")
    parser.add_argument("--measure", choices=("convert", "replicate", "iterate"), help=argparse.SUPPRESS)
    for name in ("--src", "--dest"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    parser.add_argument("--copies", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sample", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--window", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args)))
    else:
        driver(args)


if __name__ == "__main__":
    main()
