"""The plain XYZ reader: frames, and errors that name the file and the 1-based line."""

from __future__ import annotations

import numpy as np
import pytest

from mpnn.data.xyz import parse_xyz_frames, read_xyz
from mpnn.errors import DataError

WATER = """3
water molecule
O   0.000000   0.000000   0.117790
H   0.000000   0.755453  -0.471161
H   0.000000  -0.755453  -0.471161
"""


def test_one_frame() -> None:
    (frame,) = parse_xyz_frames(WATER, "water.xyz")
    assert frame.symbols == ("O", "H", "H")
    assert frame.comment == "water molecule"
    assert frame.positions.shape == (3, 3) and frame.positions.dtype == np.float64
    assert frame.positions[1, 1] == pytest.approx(0.755453)
    assert frame.line == 1


def test_multi_frame_with_blank_lines_extra_columns_and_atomic_numbers(tmp_path) -> None:
    methane = "2\n\nC 0 0 0 0.1 extra\n1 0 0 1.09\n"  # empty comment, extra column, Z for H
    path = tmp_path / "traj.xyz"
    path.write_text(WATER + "\n" + methane)
    frames = read_xyz(path)
    assert [f.num_atoms for f in frames] == [3, 2]
    assert frames[1].symbols == ("C", "H")
    assert frames[1].line == 7
    assert frames[1].source == str(path)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("x\ncomment\n", 1, "expected the number of atoms"),
        ("0\nempty\n", 1, "empty molecule"),
        ("2\nc\nH 0 0 0\n", 4, "expected atom 2 of 2"),
        ("2\nc\nH 0 0 0\n\nH 0 0 1\n", 4, "blank line"),
        ("1\nc\nH 0 0\n", 3, "expected 'El x y z'"),
        ("2\nc\nH 0 0 0\nH 0 zero 1\n", 4, "cannot read coordinates"),
        ("2\nc\nH 0 0 0\nH nan 0 1\n", 4, "non-finite coordinate"),
        ("2\nc\nH 0 0 0\nCl 0 0 2\n", 4, "unknown element 'Cl'"),
        ("3\nc\nC 0 0 0\nH 0 0 1.1\nH 0 0 1.3\n", 5, "atom 3 is 0.200 Angstrom from atom 2"),
        (WATER + "2\nsecond\nO 0 0 0\n", 9, "expected atom 2 of 2"),
        ("", 1, "no structure"),
    ],
)
def test_errors_name_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(DataError) as info:
        parse_xyz_frames(text, "bad.xyz")
    assert str(info.value).startswith(f"bad.xyz:{line}: ")
    assert message in str(info.value)


def test_missing_file_is_a_data_error(tmp_path) -> None:
    with pytest.raises(DataError, match="cannot read"):
        read_xyz(tmp_path / "absent.xyz")
