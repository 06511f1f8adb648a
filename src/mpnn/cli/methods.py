"""``mpnn search``, ``mpnn ensemble``, ``mpnn report`` and ``mpnn compare``: Gilmer et al.'s method.

Random hyperparameter search (:mod:`mpnn.experiments.search`), ensembles of the best runs
(:mod:`mpnn.experiments.ensemble`), Table 2-style reports (:mod:`mpnn.experiments.report`) and ablations
(:mod:`mpnn.experiments.ablation`) trained under one budget. ``register(subparsers)`` adds the
subcommands to the ``mpnn`` parser.
Errors end the command with one line ``mpnn: error: <message>`` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from mpnn.cli.options import (
    _count,
    _positive_int,
    _seed,
    add_data_options,
    add_length_options,
    add_model_options,
    add_out_option,
    add_quiet_option,
    add_workers_option,
    train_config,
)
from mpnn.outputs import check_outputs

SEARCH_EPILOG = """\
SPACE is a JSON or YAML file {"base": {run settings}, "space": {"training.lr": {"uniform": [1e-5,
5e-4]}, "model.steps": {"int": [3, 8]}, "model.aggregation": {"choice": ["sum", "mean"]}, ...}}
(distributions: uniform, log_uniform, int, choice) or a built-in name: paper (Gilmer et al. 2017:
lr, decay start and factor, T, set2set steps). Trial i depends only on (--seed, i): more trials
keep the earlier ones. Each trial is a run in OUT/trial-000, ...; running the command again
resumes the search and skips finished trials. OUT/search.csv ranks the trials by validation
mean error ratio.

examples:
  mpnn search paper --target U0 --trials 50 --epochs 100 --out runs/search-U0
  mpnn search space.yaml --trials 8 --subset 1000 --time-budget 300 --out runs/search
"""

COMPARE_EPILOG = """\
ABLATION is a JSON or YAML file {"base": {run settings}, "runs": {"label": {"model": "<model or
preset>", "dim": 128, "training.lr": 1e-4}, ...}} or a built-in name (example). Plain keys of a
run are model options, dotted keys run settings; data, targets, seed and training length come
from the base and the command line, so every run sees the same molecules, split and budget.
Each run trains in OUT/<label> (resumable); OUT/report.md and OUT/report.png compare them.

examples:
  mpnn compare example --epochs 2 --subset 300 --out runs/example
"""


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """The settings every run of a search or comparison shares (they override the file's base)."""
    add_data_options(p, "(default: the bundled 4,000-molecule subset)")
    p.add_argument(
        "--target", metavar="NAMES", help="'U0', 'U0,gap' or 'all' (default: the file's, else all)"
    )
    p.add_argument("--joint", action="store_true", default=None, help="one model for all the targets")
    p.add_argument("--subset", type=_positive_int, metavar="N", help="use N random molecules")
    p.add_argument("--valid", type=_positive_int, metavar="N", help="validation molecules (at least 1)")
    p.add_argument("--test", type=_positive_int, metavar="N", help="test molecules (at least 1)")
    add_length_options(p)
    p.add_argument("--patience", type=_count, metavar="N", help="early stopping patience, 0: never")
    add_out_option(p, "output folder (resumable)", required=True)
    add_quiet_option(p)


def register(subparsers: Any) -> None:
    """Add ``search``, ``ensemble``, ``report`` and ``compare`` to the ``mpnn`` parser."""
    p = subparsers.add_parser(
        "search",
        help="seeded random hyperparameter search (one run per trial)",
        description="Random hyperparameter search: trials drawn from SPACE, each trained as a run.",
        epilog=SEARCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("space", metavar="SPACE", help="search space file (JSON/YAML) or built-in name")
    p.add_argument("--trials", type=_positive_int, default=50, metavar="N", help="default: 50 (the paper's)")
    p.add_argument(
        "--seed", dest="search_seed", type=_count, default=0, metavar="S", help="draws (default: 0)"
    )
    _add_run_options(p)
    add_model_options(p)
    p.set_defaults(func=cmd_search)

    p = subparsers.add_parser(
        "ensemble",
        help="average the k runs of best validation error",
        description="Ensemble the k runs with the lowest validation mean error ratio (same targets\n"
        "and split): mean prediction, spread as uncertainty; writes OUT/ensemble.json and\n"
        "OUT/test_metrics.csv.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("runs", nargs="+", metavar="RUN_OR_FOLDER", help="runs, or folders of runs (a search)")
    p.add_argument("--k", type=_positive_int, default=5, help="members (default: 5, the paper's ens5)")
    add_out_option(p, "output folder", required=True)
    add_workers_option(p)
    p.set_defaults(func=cmd_ensemble)

    p = subparsers.add_parser(
        "report",
        help="Markdown table (and bar chart) of test errors, as the paper's Table 2",
        description="Test MAE and error ratio per target of runs, ensembles or model folders.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="folders with a test_metrics.csv")
    add_out_option(p, "write the Markdown here (default: print it)", short=True, metavar="FILE")
    p.add_argument("--plot", metavar="PNG", help="bar chart of the error ratios")
    p.add_argument("--paper", action="store_true", help="add the paper's enn-s2s and ens5 columns")
    p.set_defaults(func=cmd_report)

    p = subparsers.add_parser(
        "compare",
        help="train the runs of an ablation under one budget and report them",
        description="Train every run of ABLATION with the same data, split and budget, then\n"
        "write OUT/report.md and OUT/report.png.",
        epilog=COMPARE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("ablation", metavar="ABLATION", help="ablation file (JSON/YAML) or built-in name")
    p.add_argument("--seed", type=_seed, help="seed of weights, subset, split and order of every run")
    p.add_argument("--paper", action="store_true", help="add the paper's enn-s2s and ens5 columns")
    _add_run_options(p)
    p.set_defaults(func=cmd_compare)


def _file(text: str) -> str | None:
    """A search space or ablation argument that names a file (not a built-in name), else None."""
    return text if Path(text).expanduser().is_file() else None


def cmd_search(args: argparse.Namespace) -> int:
    """``mpnn search``: run (or resume) the trials, then print the best ones."""
    from mpnn.experiments.search import SEARCH_CSV, format_search, load_space, run_search

    check_outputs(folders=[args.out], inputs=[_file(args.space)])
    space = load_space(args.space)
    print(f"search {space.source}: {args.trials} trials, seed {args.search_seed} -> {args.out}")
    results = run_search(
        space,
        args.out,
        trials=args.trials,
        seed=args.search_seed,
        overrides=train_config(args),
        workers=args.workers,
        show_progress=not args.quiet,
    )
    print(f"best trials by validation mean error ratio (all: {Path(args.out) / SEARCH_CSV}):")
    print(format_search(results), end="")
    return 0


def cmd_ensemble(args: argparse.Namespace) -> int:
    """``mpnn ensemble``: choose the members, evaluate their mean, print the table."""
    from mpnn.experiments.ensemble import build_ensemble, format_ensemble

    errors = build_ensemble(args.runs, args.k, args.out, workers=args.workers)
    print(format_ensemble(errors, title=f"test set, ensemble of {args.k} ({args.out}):"), end="")
    return 0


def _columns(runs: list[tuple[str, Path]], paper: bool) -> list[Any]:
    from mpnn.experiments.report import PAPER_RATIOS, load_run, paper_run

    columns = [load_run(path, label) for label, path in runs]
    return columns + ([paper_run(name) for name in PAPER_RATIOS] if paper else [])


def cmd_report(args: argparse.Namespace) -> int:
    """``mpnn report``: the Markdown table (printed or written) and the optional chart."""
    from mpnn.experiments.report import bar_chart, report_markdown, unique_labels
    from mpnn.files import write_text

    check_outputs(files=[args.out, args.plot], read_dirs=args.runs)
    labels = unique_labels(args.runs)
    columns = _columns([(label, Path(p)) for label, p in zip(labels, args.runs, strict=True)], args.paper)
    plot = None
    if args.plot:
        bar_chart(columns, args.plot)
        folder = Path(args.out).resolve().parent if args.out else Path.cwd()
        plot = os.path.relpath(Path(args.plot).resolve(), folder)
    text = report_markdown(columns, plot=plot)
    if args.out:
        write_text(text, args.out)
        print(f"wrote {args.out}" + (f" and {args.plot}" if args.plot else ""))
    else:
        print(text, end="")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """``mpnn compare``: train (or resume) every run, then write and print the report."""
    from mpnn.experiments.ablation import load_ablation, run_ablation
    from mpnn.experiments.report import bar_chart, markdown_table, report_markdown
    from mpnn.files import write_text

    check_outputs(folders=[args.out], inputs=[_file(args.ablation)])
    ablation = load_ablation(args.ablation)
    out = Path(args.out)
    print(f"compare {ablation.source}: {len(ablation.runs)} runs -> {out}")
    runs = run_ablation(
        ablation,
        out,
        overrides=train_config(args),
        workers=args.workers,
        show_progress=not args.quiet,
    )
    columns = _columns(runs, args.paper)
    bar_chart(columns, out / "report.png")
    write_text(
        report_markdown(columns, title=f"Comparison: {ablation.source}", plot="report.png"), out / "report.md"
    )
    print(markdown_table(columns), end="")
    print(f"wrote {out / 'report.md'} and {out / 'report.png'}")
    return 0
