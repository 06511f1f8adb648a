"""Mutations of valid files and the harness that runs ``mpnn`` on them, for tests/test_fuzz_readers.py.

Strategies (hypothesis) that turn a valid seed into a malformed one:

- :func:`mutated_bytes`: 1-3 edits of the raw bytes: a byte flip, a line deleted, duplicated or
  swapped, a truncation, a number replaced by a huge, negative, zero, nan, inf or non-numeric
  token, a word replaced by garbage, a garbage line or random bytes (invalid UTF-8 included)
  inserted.
- :func:`mutated_tree`: one edit of a JSON-like tree (a run configuration, a checkpoint's dict): a
  value replaced by another type, a huge or non-finite number, a tensor of another shape, dtype
  or with NaN; a key deleted or added.

:func:`run_mpnn` calls ``mpnn.cli.main`` in-process under two guards: the address space may grow
by at most :data:`MEMORY_LIMIT` bytes (``RLIMIT_AS``, Linux; an allocation beyond it fails and is
reported as such) and a command is interrupted after :data:`HARD_TIMEOUT` seconds (a hang fails
the test instead of the CI job). :func:`check_outcome` asserts the contract of issue 9.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import signal
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from hypothesis import strategies as st

from mpnn import cli

#: Bytes the address space may grow by during one command.
MEMORY_LIMIT = 1 << 30
#: Seconds after which a command counts as hung.
HARD_TIMEOUT = 60

_NUMBER = re.compile(rb"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.])")
BAD_NUMBERS = (
    b"nan", b"NaN", b"inf", b"-inf", b"1e308", b"-1e308", b"1e999", b"0", b"-1", b"-0", b"1e-320",
    b"99999999999999999999", b"2147483648", b"1000000000", b"100000", b"x", b"", b"1,5", b"0x10",
    b"3.", b"--1", b"1e", b"\xff\xfe",
)  # fmt: skip
GARBAGE = (
    b"", b" ", b"\t", b"#", b"!", b"begin", b"end", b"atom", b"lattice 0 0 0", b"energy", b"gdb 1",
    b"0", b"3", b"-2", b"1000000000", b"X 0 0 0", b"H nan 0 0", b"\x00", b"\xff\xfe\xfd", b"\xc3(",
    b"\r", b"{", b"}", b"[", b"- a: b", b"null", b"Properties=species:S:1:pos:R:3", b'"', b"'",
)  # fmt: skip


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


@st.composite
def _edit(draw: Any, data: bytes) -> bytes:
    op = draw(st.sampled_from(
        ["flip", "delete", "duplicate", "swap", "truncate", "number", "word", "line", "bytes"]
    ))  # fmt: skip
    lines = _lines(data)
    if op == "flip" and data:
        i = draw(st.integers(0, len(data) - 1))
        return data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1 :]
    if op in ("delete", "duplicate", "swap") and lines:
        i = draw(st.integers(0, len(lines) - 1))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        else:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        return b"\n".join(lines)
    if op == "truncate":
        return data[: draw(st.integers(0, len(data)))]
    if op == "number":
        spans = [m.span() for m in _NUMBER.finditer(data)]
        if spans:
            a, b = draw(st.sampled_from(spans))
            return data[:a] + draw(st.sampled_from(BAD_NUMBERS)) + data[b:]
    if op == "word":
        spans = [m.span() for m in re.finditer(rb"\S+", data)]
        if spans:
            a, b = draw(st.sampled_from(spans))
            return data[:a] + draw(st.sampled_from(GARBAGE) | st.binary(max_size=6)) + data[b:]
    if op == "line":
        i = draw(st.integers(0, len(lines)))
        new = draw(st.sampled_from(GARBAGE) | st.text(max_size=30).map(str.encode))
        return b"\n".join(lines[:i] + [new] + lines[i:])
    i = draw(st.integers(0, len(data)))
    return data[:i] + draw(st.binary(min_size=1, max_size=12)) + data[i:]


@st.composite
def mutated_bytes(draw: Any, seed: bytes) -> bytes:
    """``seed`` after 1 to 3 random edits (see the module docstring)."""
    data = seed
    for _ in range(draw(st.integers(1, 3))):
        data = draw(_edit(data))
    return data


_ODD_VALUES = st.sampled_from(
    [None, True, False, 0, -1, 1, 2**31, 10**12, -(10**12), 1e308, -1e308, math.nan, math.inf,
     -math.inf, 1e-320, 0.5, "", "x", "nan", "U0", "enn_s2s", [], [0], [[1, 2]], {}, {"a": 1}]
)  # fmt: skip


def _paths(tree: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every path (tuple of keys/indices) in a tree of dicts and lists, the root excluded."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else []
    for key, value in items:
        yield (*prefix, key)
        yield from _paths(value, (*prefix, key))


def _odd_tensor(draw: Any, value: torch.Tensor) -> Any:
    kind = draw(st.sampled_from(["nan", "inf", "shape", "empty", "dtype", "scalar", "huge"]))
    if kind == "shape":
        return torch.zeros(*[s + draw(st.integers(1, 3)) for s in value.shape] or [2])
    if kind == "empty":
        return torch.zeros(0)
    if kind == "dtype":
        return value.to(draw(st.sampled_from([torch.int64, torch.bool, torch.float16, torch.complex64])))
    if kind == "scalar":
        return torch.tensor(draw(st.sampled_from([0, -1, 10**12])))
    if kind == "huge":
        return torch.full_like(value, 1e30) if value.is_floating_point() else torch.full_like(value, 2**40)
    out = value.clone().double() if not value.is_floating_point() else value.clone()
    if out.numel():
        out.view(-1)[draw(st.integers(0, out.numel() - 1))] = math.nan if kind == "nan" else math.inf
    return out


@st.composite
def mutated_tree(draw: Any, tree: Any) -> Any:
    """A copy of ``tree`` (dicts, lists, tensors, numbers, strings) with one edit."""
    import copy

    tree = copy.deepcopy(tree)
    paths = list(_paths(tree))
    if not paths:
        return draw(_ODD_VALUES)
    path = draw(st.sampled_from(paths))
    parent = tree
    for key in path[:-1]:
        parent = parent[key]
    key, value = path[-1], parent[path[-1]]
    op = draw(st.sampled_from(["replace", "delete", "add"]))
    if op == "delete":
        del parent[key]
    elif op == "add" and isinstance(parent, dict):
        parent[draw(st.sampled_from(["extra", "model", "0", "mean"]))] = draw(_ODD_VALUES)
    elif op == "add":
        parent.append(draw(_ODD_VALUES))
    elif isinstance(value, torch.Tensor):
        parent[key] = _odd_tensor(draw, value)
    else:
        parent[key] = draw(_ODD_VALUES)
    return tree


def _address_space() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


class Hung(BaseException):
    """A command ran past :data:`HARD_TIMEOUT` (a BaseException: the CLI must not catch it)."""


@contextlib.contextmanager
def bounded() -> Iterator[None]:
    """Memory (``RLIMIT_AS``: now + :data:`MEMORY_LIMIT`) and time (:data:`HARD_TIMEOUT`) guards."""
    limit = None
    if sys.platform.startswith("linux"):
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)
        wanted = _address_space() + MEMORY_LIMIT
        if limit[1] == resource.RLIM_INFINITY or wanted < limit[1]:
            resource.setrlimit(resource.RLIMIT_AS, (wanted, limit[1]))
        else:
            limit = None

    def hung(*_: Any) -> None:
        raise Hung(f"the command ran longer than {HARD_TIMEOUT} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(HARD_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, limit)


def run_mpnn(argv: Sequence[str]) -> tuple[int, str, str]:
    """``mpnn.cli.main(argv)`` under :func:`bounded`: (exit status, stdout, stderr).

    An exception escaping the CLI propagates (the test fails, showing it); one that comes from the
    memory guard is re-raised as an AssertionError saying so.
    """
    out, err = io.StringIO(), io.StringIO()
    try:
        with bounded(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = cli.main(list(argv))
    except (MemoryError, RuntimeError) as error:
        if isinstance(error, MemoryError) or "allocate" in str(error):
            raise AssertionError(f"mpnn {' '.join(argv)}: needs more than 1 GiB: {error}") from error
        raise
    return status, out.getvalue(), err.getvalue()


def check_outcome(status: int, stderr: str, argv: Sequence[str]) -> None:
    """Exit 0, or exit 2 with exactly one line ``mpnn: error: ...`` on stderr (after any one-line
    ``mpnn: warning: ...`` about the input, e.g. atoms unphysically close)."""
    assert status in (0, 2), f"mpnn {' '.join(argv)}: exit status {status}\n{stderr}"
    if status == 2:
        lines = [line for line in stderr.splitlines() if not line.startswith("mpnn: warning: ")]
        assert len(lines) == 1 and lines[0].startswith("mpnn: error: "), (
            f"mpnn {' '.join(argv)}: exit 2 without one 'mpnn: error:' line:\n{stderr}"
        )
