"""numba's on-disk cache of the compiled kernels, kept in step with all of their source files.

numba keys the cache of a compiled function by the contents of that function's own file only.
A kernel that calls compiled functions of other files (``fused_kernels.py`` calls
``fused_terms.py``, ``vector_math.py`` and ``angular_kernels.py``) therefore keeps its cached
machine code when only those files change: after an upgrade or an edit it would run the old
code, silently.  :func:`check` keys this package's kernel caches by the contents of every file
that defines compiled functions: where that key differs from the one stored beside the cache,
the package's cache files there are removed before the first kernel runs, and numba compiles
afresh.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

#: the modules of this package that define compiled (numba) functions
KERNEL_MODULES = (
    "angular_kernels",
    "compact_group_kernels",
    "compact_kernel_parts",
    "compact_kernels",
    "fused_energy",
    "fused_kernels",
    "fused_terms",
    "vector_math",
)
MARKER = "mpnn-kernels.key"
_checked: set[str] = set()


def source_key() -> str:
    """SHA-256 of the kernel modules' source files, in order."""
    digest = hashlib.sha256()
    here = Path(__file__).parent
    for name in KERNEL_MODULES:
        digest.update((here / f"{name}.py").read_bytes())
    return digest.hexdigest()


def check(kernel: Any) -> None:
    """Remove this package's kernel cache files from the folder where numba keeps ``kernel``'s
    cache when they were made from other sources (once per folder and process).  A folder that
    cannot be read or written is left alone: numba then finds no usable cache there either."""
    folder = getattr(getattr(kernel, "_cache", None), "_cache_path", None)
    if not folder or folder in _checked:
        return
    _checked.add(folder)
    marker = Path(folder) / MARKER
    key = source_key()
    try:
        if marker.read_text() == key:
            return
    except OSError:
        pass
    try:
        for path in Path(folder).iterdir():
            if path.suffix in (".nbi", ".nbc") and path.name.split(".")[0] in KERNEL_MODULES:
                path.unlink(missing_ok=True)
        marker.write_text(key)
    except OSError:
        return
