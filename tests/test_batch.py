"""collate against a pair-by-pair construction of the same graphs."""

import pytest
import torch
from model_contract import molecules

from mpnn.batch import BOND_NONE, collate


def expected_edges(mols, complete: bool) -> list[tuple[int, int, int]]:
    """(source, target, type) of every directed edge, from Python sets and dicts."""
    edges, start = [], 0
    for m in mols:
        typed = {}
        for (i, j), t in zip(m.bonds.tolist(), m.bond_type.tolist(), strict=True):
            typed[(i, j)] = typed[(j, i)] = t
        for v in range(m.num_atoms):
            for w in range(m.num_atoms):
                if w != v and (complete or (w, v) in typed):
                    edges.append((w + start, v + start, typed.get((w, v), BOND_NONE)))
        start += m.num_atoms
    return sorted(edges, key=lambda e: (e[1], e[0]))


@pytest.mark.parametrize("graph", ["complete", "bonds"])
def test_collate_builds_every_edge_with_its_bond_type(graph: str) -> None:
    mols = molecules(sizes=(1, 4, 9, 2, 6))
    batch = collate(mols, graph=graph)
    got = list(zip(*batch.edge_index.tolist(), batch.edge_type.tolist(), strict=True))
    assert got == expected_edges(mols, complete=graph == "complete")
    assert batch.ptr.tolist() == [0, 1, 5, 14, 16, 22]
    assert torch.equal(batch.batch, torch.repeat_interleave(torch.arange(5), torch.tensor([1, 4, 9, 2, 6])))
    assert torch.equal(batch.pos, torch.cat([m.pos for m in mols]))


def test_collate_rejects_empty_input_and_unknown_graphs() -> None:
    with pytest.raises(ValueError, match="empty"):
        collate([])
    with pytest.raises(ValueError, match="graph"):
        collate(molecules(sizes=(3,)), graph="knn")
