"""``mpnn data convert SRC DEST`` and ``mpnn data info STORE``: structure stores from the command line.

``convert`` streams a source (QM9 release, extxyz / ASE db / n2p2 ``input.data`` file, DeePMD
folder: :mod:`mpnn.data.sources`) into a new store file (:mod:`mpnn.data.store`), holding one
transaction of structures at a time. Before anything is written: DEST must be named ``*.lmdb``
and must not exist (a store is never written over anything, an empty file included: remove it
yourself), must not be or lie inside anything the command reads, and the source is checked as far
as it can be without reading every structure. A structure that fails later, an interruption or a
full disk removes the partial file: DEST is then absent, never half-written.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from mpnn.cli.options import add_quiet_option, add_units_option, add_workers_option
from mpnn.errors import DataError

CONVERT_EPILOG = """\
SRC kinds (detected, or given with --kind): qm9 (a QM9 release: tar archive or folder of
dsgdb9nsd_*.xyz; featurised as `mpnn train` does, uncharacterized.txt and atomref.txt found
beside it), ase (extxyz, ASE db, any file ASE reads: energy eV, forces eV/A), n2p2 (input.data;
--units for its units), deepmd (a DeePMD system folder with type.raw, type_map.raw, set.*/*.npy,
or a folder of systems).

examples:
  mpnn data convert qm9_dsgdb9nsd.xyz.tar.xz qm9.lmdb
  mpnn data convert train.extxyz train.lmdb
  mpnn data convert input.data water.lmdb --units bohr,hartree
  mpnn data info qm9.lmdb --stats
"""


def register(subparsers: Any) -> None:
    """Add ``data`` (``convert``, ``info``) to the ``mpnn`` parser."""
    from mpnn.cli.options import Parser
    from mpnn.data.sources import KINDS

    group = subparsers.add_parser("data", help="structure stores: convert data sets, show a store")
    sub = group.add_subparsers(dest="data_command", required=True, metavar="COMMAND", parser_class=Parser)
    p = sub.add_parser(
        "convert",
        help="stream a data set into a structure store (one LMDB file, read lazily)",
        description="Convert a data set into a structure store, streaming (memory does not grow with\n"
        "the data set). DEST (*.lmdb) must not exist.",
        epilog=CONVERT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", metavar="SRC", help="a data set (file or folder)")
    p.add_argument("dest", metavar="DEST", help="the store file to create (*.lmdb)")
    p.add_argument("--kind", choices=KINDS, help="the kind of SRC (default: detected)")
    add_units_option(
        p, "units of an n2p2 input.data SRC: angstrom|bohr|nm,ev|hartree|... (default: angstrom,ev)"
    )
    p.add_argument("--uncharacterized", metavar="PATH", help="QM9 uncharacterized.txt (default: beside SRC)")
    p.add_argument("--atomref", metavar="PATH", help="QM9 atomref.txt (default: beside SRC, else bundled)")
    add_workers_option(p)
    add_quiet_option(p, "no progress bar")
    p.set_defaults(func=cmd_convert)
    p = sub.add_parser("info", help="what a structure store holds", description="Show a store's metadata.")
    p.add_argument("store", metavar="STORE", help="a structure store file")
    p.add_argument("--stats", action="store_true", help="also the mean and std of each target (one pass)")
    p.set_defaults(func=cmd_info)


def cmd_convert(args: argparse.Namespace) -> int:
    """``mpnn data convert SRC DEST``."""
    from tqdm.auto import tqdm

    from mpnn.data.sources import open_source
    from mpnn.data.store import STORE_SUFFIXES
    from mpnn.data.store_writer import StoreWriter
    from mpnn.files import remove_stale_temporaries
    from mpnn.outputs import check_outputs, check_suffix

    dest = Path(args.dest).expanduser()
    check_suffix(dest, STORE_SUFFIXES, "a structure store (one LMDB file)")
    if os.path.lexists(dest):
        raise DataError(f"{args.dest}: exists; a store is never written over anything (remove it first)")
    side = [args.uncharacterized, args.atomref]
    check_outputs(files=[dest], inputs=[args.source, *side])
    source = open_source(
        args.source,
        args.kind,
        units=args.units or (1.0, 1.0),
        uncharacterized=args.uncharacterized,
        atomref=args.atomref,
        workers=args.workers,
    )
    check_outputs(files=[dest], inputs=source.inputs)  # side files found beside SRC included
    remove_stale_temporaries(dest.parent)
    writer = StoreWriter(
        dest, target_names=source.target_names, target_units=source.target_units, source=source.description
    )
    bar = tqdm(total=source.total, desc=f"{source.kind} -> {dest.name}", unit="structure", disable=args.quiet)
    with bar, writer:
        for molecule in source.molecules:
            writer.add(molecule)
            bar.update()
        writer.info.update(source.info)
    size = dest.stat().st_size
    print(f"wrote {dest}: {writer.count} structures, {writer.num_atoms} atoms, {size / 2**20:.1f} MiB")
    if source.info.get("num_failures"):
        print(f"{source.info['num_failures']} molecules could not be featurised and were left out")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """``mpnn data info STORE``."""
    from mpnn.data.store import StructureStore

    store = StructureStore(args.store)
    meta = store.meta
    print(f"{args.store}: {meta['format']} version {meta['version']}")
    print(f"  {len(store)} structures, {meta['num_atoms']} atoms, {meta['node_features']} node features")
    print(f"  fields: {', '.join(meta['fields'])}")
    print(f"  source: {meta['source']}")
    targets = [f"{n} ({u})" for n, u in zip(store.target_names, store.target_units, strict=True)]
    print(f"  targets: {', '.join(targets) or 'none'}")
    for name, value in meta["info"].items():
        if name != "failures":
            print(f"  {name}: {value}")
    if args.stats and store.target_names:
        from mpnn.data.store_stats import target_statistics

        stats = target_statistics(store)
        for name, unit, mean, std in zip(stats.names, store.target_units, stats.mean, stats.std, strict=True):
            print(f"  {name}: mean {mean:.6g} {unit}, std {std:.6g}")
    return 0
