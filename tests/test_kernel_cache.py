"""numba's cache of the kernels is keyed by all their source files, not by each kernel's own.

numba checks only the file of the function it loads: a kernel whose callees (in other files)
changed would run its old machine code.  :mod:`mpnn.symmetry.kernel_cache` removes the
package's cache files when the kernel sources differ from those the cache was made from.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from mpnn.symmetry import kernel_cache

OURS = ["fused_kernels.fused_walk-48.py311.nbi", "fused_kernels.fused_walk-48.py311.1.nbc"]
OTHERS = ["my_module.f-3.py311.nbi", "my_module.f-3.py311.1.nbc", "notes.txt"]


def _kernel(folder: Path):
    return SimpleNamespace(_cache=SimpleNamespace(_cache_path=str(folder)))


def _fill(folder: Path) -> None:
    for name in OURS + OTHERS:
        (folder / name).write_bytes(b"x")


@pytest.fixture(autouse=True)
def _fresh_process(monkeypatch):
    monkeypatch.setattr(kernel_cache, "_checked", set())


def test_stale_kernel_caches_are_removed_and_others_kept(tmp_path) -> None:
    _fill(tmp_path)
    kernel_cache.check(_kernel(tmp_path))  # no key yet: made from unknown sources
    assert not any((tmp_path / name).exists() for name in OURS)
    assert all((tmp_path / name).exists() for name in OTHERS)
    assert (tmp_path / kernel_cache.MARKER).read_text() == kernel_cache.source_key()


def test_caches_of_the_same_sources_are_kept(tmp_path) -> None:
    (tmp_path / kernel_cache.MARKER).write_text(kernel_cache.source_key())
    _fill(tmp_path)
    kernel_cache.check(_kernel(tmp_path))
    assert all((tmp_path / name).exists() for name in OURS + OTHERS)


def test_caches_of_other_sources_are_removed(tmp_path, monkeypatch) -> None:
    (tmp_path / kernel_cache.MARKER).write_text(kernel_cache.source_key())
    _fill(tmp_path)
    original = kernel_cache.source_key()
    edited = "x" + original[1:]  # a callee edited (never a hex digest: differs from any real key)
    monkeypatch.setattr(kernel_cache, "source_key", lambda: edited)
    kernel_cache.check(_kernel(tmp_path))
    assert not any((tmp_path / name).exists() for name in OURS)
    assert (tmp_path / kernel_cache.MARKER).read_text() == edited


def test_a_folder_that_cannot_be_used_is_left_alone(tmp_path) -> None:
    kernel_cache.check(_kernel(tmp_path / "missing"))  # no error, nothing created
    kernel_cache.check(SimpleNamespace())  # a kernel numba does not cache
    assert not (tmp_path / "missing").exists()


def test_every_module_with_compiled_functions_is_in_the_key() -> None:
    folder = Path(kernel_cache.__file__).parent
    compiled = {p.stem for p in folder.glob("*.py") if re.search(r"^@njit", p.read_text(), re.M)}
    assert compiled == set(kernel_cache.KERNEL_MODULES)
