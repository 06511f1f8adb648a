"""n2p2 potential files besides ``input.nn``: ``scaling.data``, ``weights.ZZZ.data``, whole folders.

``scaling.data`` (``Mode::setupSymmetryFunctionScaling``): lines starting with ``#`` are comments;
one row per symmetry function, elements in n2p2's order (atomic number) and, within an element,
functions in n2p2's sorted order (:func:`~mpnn.n2p2.input_nn.sort_symmetry_functions`)::

    e_index sf_index G_min G_max G_mean [G_sigma]        (both indices 1-based)

n2p2 assigns rows by position; here the two indices must match that position. The values are in
n2p2's internal units (normalised ones when ``input.nn`` has ``conv_length``). Returned per
element as an array (n_sf, 4): min, max, mean, sigma (sigma 0 when an old file omits it, as in
n2p2).

``weights.ZZZ.data`` (ZZZ = atomic number, 3 digits; ``NeuralNetwork::setConnections``): the
first column of every non-comment line is one value. For each layer l = 1..L with n_in inputs and
n_out neurons, first all weights, source neuron j outer loop, target neuron k inner loop
(``w[j][k]``, column ``a``), then the n_out biases (column ``b``). In ``torch.nn.Linear`` layout
(W of shape (n_out, n_in), y = W x + b) that is ``W.T.flatten()`` followed by ``b``, and the file
holds sum_l (n_in n_out + n_out) values. Values are written as ``%24.16E`` (17 significant
digits: every float64 reads back exactly), with n2p2's annotation columns
``t index l_s n_s l_e n_e``.

A potential folder holds ``input.nn``, ``scaling.data`` and one weights file per element.
:func:`write_potential` writes every file to a temporary name first and renames them only when
all are written, so a failure leaves no half-written potential.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mpnn.errors import DataError
from mpnn.files import read_text, write_text, write_texts
from mpnn.n2p2.input_nn import (
    N2p2Settings,
    atomic_number,
    format_input_nn,
    read_input_nn,
)

Layers = list[tuple[np.ndarray, np.ndarray]]


@dataclass
class N2p2Potential:
    """A 2G n2p2 potential: settings, per-element scaling (n_sf, 4) and per-element network layers."""

    settings: N2p2Settings
    scaling: dict[str, np.ndarray]
    weights: dict[str, Layers]


def weights_file_name(element: str) -> str:
    """``weights.ZZZ.data`` of an element (ZZZ its atomic number)."""
    return f"weights.{atomic_number(element):03d}.data"


def _data_lines(path: str | Path) -> list[tuple[int, list[str]]]:
    text = read_text(path, "an n2p2 data file")
    rows = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        words = raw.split()
        if words and not words[0].startswith("#"):
            rows.append((lineno, words))
    return rows


def _number(word: str, path: str | Path, line: int) -> float:
    try:
        value = float(word)
    except ValueError:
        raise DataError(f"{path}:{line}: not a number: {word!r}") from None
    if not math.isfinite(value):
        raise DataError(f"{path}:{line}: not a finite number: {word!r}")
    return value


def read_scaling(path: str | Path, settings: N2p2Settings) -> dict[str, np.ndarray]:
    """Per element an array (n_sf, 4) of min, max, mean, sigma; rows in n2p2's sorted order."""
    counts = settings.n_symmetry_functions()
    expected = [(i + 1, j + 1) for i, e in enumerate(settings.elements) for j in range(counts[e])]
    rows = _data_lines(path)
    values = np.zeros((len(expected), 4))
    for k, (line, words) in enumerate(rows):
        if len(words) not in (5, 6):
            raise DataError(
                f"{path}:{line}: expected 5 or 6 columns (e_index sf_index min max mean "
                f"[sigma]), found {len(words)}"
            )
        try:
            index = (int(words[0]), int(words[1]))
        except ValueError:
            raise DataError(f"{path}:{line}: element and function indices must be integers") from None
        if not 1 <= index[0] <= len(settings.elements):
            n = len(settings.elements)
            raise DataError(f"{path}:{line}: element index {index[0]} out of range 1..{n}")
        e = settings.elements[index[0] - 1]
        if not 1 <= index[1] <= counts[e]:
            raise DataError(f"{path}:{line}: function index {index[1]} out of range 1..{counts[e]} for {e}")
        if k >= len(expected) or index != expected[k]:
            raise DataError(_count_message(path, settings, rows, counts))
        values[k, : len(words) - 2] = [_number(w, path, line) for w in words[2:]]
        if len(words) == 5 and settings.scaling == "sigma":
            raise DataError(f"{path}:{line}: no sigma column, but input.nn scales with sigma")
        _check_divisor(values[k], settings, f"{path}:{line}: element {e}, symmetry function {index[1]}")
    if len(rows) != len(expected):
        raise DataError(_count_message(path, settings, rows, counts))
    bounds = np.cumsum([0] + [counts[e] for e in settings.elements])
    return {e: values[bounds[i] : bounds[i + 1]].copy() for i, e in enumerate(settings.elements)}


def _check_divisor(row: np.ndarray, settings: N2p2Settings, where: str) -> None:
    """Refuse a row that n2p2's scaling would divide by zero (its result would be inf or NaN).

    n2p2 (``SymFnc::setScalingType``) sets the factor (Smax - Smin) / (Gmax - Gmin) (modes scale and
    scale_center) or (Smax - Smin) / sigma (sigma) without a check, so a function constant on the
    training set (min == max) makes every energy and force NaN or inf; n2p2's ``nnp-prune range``
    removes such functions.
    """
    mode = settings.scaling
    if mode not in ("scale", "scale_center", "sigma"):
        return
    divisor = row[3] if mode == "sigma" else row[1] - row[0]
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        factor = (settings.scale_max - settings.scale_min) / divisor
    if not np.isfinite(factor):
        what = f"sigma is {row[3]:g}" if mode == "sigma" else f"min and max are both {row[0]:g}"
        raise DataError(
            f"{where}: {what}, and n2p2's '{mode}' scaling divides by "
            f"{'sigma' if mode == 'sigma' else 'max - min'} (inf or NaN energies); remove the function "
            "from input.nn (n2p2's nnp-prune range does) or give it a range"
        )


def _count_message(path: str | Path, settings: N2p2Settings, rows: list, counts: dict[str, int]) -> str:
    found = [sum(1 for _, w in rows if w[0] == str(i + 1)) for i in range(len(settings.elements))]
    for i, e in enumerate(settings.elements):
        if found[i] != counts[e]:
            return f"{path}: element {e} has {found[i]} rows, expected {counts[e]} (its symmetry functions)"
    return f"{path}: rows are not in n2p2's order (element by element, function indices 1, 2, ...)"


def write_scaling(path: str | Path, settings: N2p2Settings, scaling: dict[str, np.ndarray]) -> None:
    """Write ``scaling`` (per element (n_sf, 4)) as n2p2's ``scaling.data``."""
    write_text(format_scaling(settings, scaling), path)


def format_scaling(settings: N2p2Settings, scaling: dict[str, np.ndarray]) -> str:
    """The text :func:`write_scaling` writes."""
    lines = [
        "# Symmetry function scaling data (n2p2 format, written by mpnn).",
        "# Col 1 e_index, 2 sf_index, 3 sf_min, 4 sf_max, 5 sf_mean, 6 sf_sigma",
    ]
    counts = settings.n_symmetry_functions()
    for i, e in enumerate(settings.elements):
        table = np.asarray(scaling.get(e, np.zeros((0, 4))), dtype=np.float64)
        if table.shape != (counts[e], 4):
            raise DataError(f"scaling for {e}: expected shape ({counts[e]}, 4), found {table.shape}")
        if not np.isfinite(table).all():
            raise DataError(f"scaling for {e}: values must be finite")
        for j, row in enumerate(table):
            lines.append(f"{i + 1:10d} {j + 1:10d} " + " ".join(f"{v:24.16E}" for v in row))
    return "\n".join(lines) + "\n"


def read_weights(path: str | Path, n_inputs: int, nodes: tuple[int, ...]) -> Layers:
    """Per layer (W (out, in), b (out,)); ``nodes`` are the hidden sizes and the output size (1)."""
    sizes = [int(n_inputs), *map(int, nodes)]
    n_expected = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    rows = _data_lines(path)
    if len(rows) != n_expected:
        raise DataError(f"{path}: expected {n_expected} values, found {len(rows)}")
    values = np.array([_number(words[0], path, line) for line, words in rows], dtype=np.float64)
    layers: Layers = []
    start = 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        kinds = ["a"] * (n_in * n_out) + ["b"] * n_out
        for (line, words), kind in zip(rows[start : start + len(kinds)], kinds, strict=True):
            if len(words) > 1 and words[1] != kind:
                what = "weight ('a')" if kind == "a" else "bias ('b')"
                raise DataError(
                    f"{path}:{line}: expected a {what}, found {words[1]!r} (layout does not "
                    f"match network {'-'.join(map(str, sizes))})"
                )
        w = values[start : start + n_in * n_out].reshape(n_in, n_out).T.copy()
        b = values[start + n_in * n_out : start + len(kinds)].copy()
        layers.append((w, b))
        start += len(kinds)
    return layers


def write_weights(path: str | Path, layers: Layers) -> None:
    """Write ``layers`` (per layer (W (out, in), b (out,))) in n2p2's annotated weights format."""
    write_text(format_weights(layers), path)


def format_weights(layers: Layers) -> str:
    """The text :func:`write_weights` writes."""
    lines = [
        "# Neural network connection values (weights and biases), n2p2 format, written by mpnn.",
        "# Col 1 connection, 2 t (a = weight, b = bias), 3 index, 4 l_s, 5 n_s, 6 l_e, 7 n_e",
    ]
    count, previous = 0, None
    for layer, (w, b) in enumerate(layers, start=1):
        w, b = np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if w.ndim != 2 or b.shape != (w.shape[0],) or (previous is not None and w.shape[1] != previous):
            raise DataError(
                f"weights layer {layer}: shapes {w.shape} and {b.shape} do not chain "
                f"(expected W (out, {previous or 'in'}) and b (out,))"
            )
        if not (np.isfinite(w).all() and np.isfinite(b).all()):
            raise DataError(f"weights layer {layer}: values must be finite")
        previous = w.shape[0]
        for j in range(w.shape[1]):
            for k in range(w.shape[0]):
                count += 1
                lines.append(f"{w[k, j]:24.16E} a {count:9d} {layer - 1:5d} {j + 1:5d} {layer:5d} {k + 1:5d}")
        for k in range(w.shape[0]):
            count += 1
            lines.append(f"{b[k]:24.16E} b {count:9d} {layer:5d} {k + 1:5d}")
    if not layers:
        raise DataError("weights: no layers")
    return "\n".join(lines) + "\n"


def read_potential(folder: str | Path, settings: N2p2Settings | None = None) -> N2p2Potential:
    """Read ``input.nn``, ``scaling.data`` and ``weights.ZZZ.data`` from an n2p2 potential folder
    (``settings``: its ``input.nn``, when the caller has read it already)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    if settings is None:
        settings = read_input_nn(folder / "input.nn")
    scaling = read_scaling(folder / "scaling.data", settings)
    counts = settings.n_symmetry_functions()
    weights = {
        e: read_weights(folder / weights_file_name(e), counts[e], (*settings.nodes[e], 1))
        for e in settings.elements
    }
    return N2p2Potential(settings, scaling, weights)


def format_potential(potential: N2p2Potential) -> dict[str, str]:
    """File name -> text of every file of ``potential`` (checked: raises before anything is written)."""
    s = potential.settings
    texts = {"input.nn": format_input_nn(s), "scaling.data": format_scaling(s, potential.scaling)}
    counts = s.n_symmetry_functions()
    for e in s.elements:
        layers = potential.weights.get(e)
        shapes = [np.shape(w) for w, _ in layers or []]
        want = list(zip((*s.nodes[e], 1), (counts[e], *s.nodes[e]), strict=True))
        if shapes != want:
            raise DataError(
                f"{weights_file_name(e)}: weight shapes {shapes} do not match the settings {want}"
            )
        texts[weights_file_name(e)] = format_weights(layers)
    return texts


def write_potential(folder: str | Path, potential: N2p2Potential) -> None:
    """Write all files of ``potential`` into ``folder``; none is replaced unless all could be written."""
    write_texts(folder, format_potential(potential))
