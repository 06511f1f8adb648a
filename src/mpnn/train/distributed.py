"""Training on several processes with PyTorch's DistributedDataParallel (DDP).

Launch any training command with ``torchrun`` (or ``srun`` under SLURM, which sets the same
variables through ``torchrun`` or ``SLURM_PROCID``/``SLURM_NTASKS``); :func:`context` reads
``RANK``, ``WORLD_SIZE`` (and ``LOCAL_RANK`` for the GPU) from the environment and joins the
process group: gloo on CPU, NCCL on GPUs. Nothing here manages processes or averages gradients:
:class:`torch.nn.parallel.DistributedDataParallel` does, in the backward pass.

Each process takes every P-th structure of each global batch (:func:`shard`), so the global
batch, the learning rate and the epoch order do not depend on P; the loss of a process divides
its sum of squared errors by the size of the *global* batch (:mod:`mpnn.train.targets`) and
DDP's gradient average is multiplied back by P, so a step equals the single-process step.
Metrics are summed over processes (:meth:`Context.sum`); only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass(frozen=True)
class Context:
    """This process's place: ``rank`` of ``world`` processes; ``device`` to train on."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        """Whether this process writes files and prints (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def sum(self, values: Tensor) -> Tensor:
        """``values`` summed over all processes (float64, on the CPU)."""
        values = values.detach().double()
        if not self.distributed:
            return values
        reduced = values.to(self.device)
        dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
        return reduced.cpu()

    def agree(self, value: float) -> float:
        """Rank 0's ``value`` on every process (a time or a decision all must share)."""
        if not self.distributed:
            return value
        box = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.broadcast(box, src=0)
        return float(box)

    def wrap(self, module: nn.Module, *, unused_parameters: bool = False) -> nn.Module:
        """``module`` under DDP when there are several processes, else itself."""
        if not self.distributed:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(
            module, device_ids=ids, find_unused_parameters=unused_parameters
        )

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def context() -> Context:
    """The process group of a ``torchrun``/SLURM launch (joined once; process r trains on GPU
    ``LOCAL_RANK`` when there are GPUs), else a single process (on the first GPU if any)."""
    world = int(os.environ.get("WORLD_SIZE", os.environ.get("SLURM_NTASKS", "1")) or 1)
    if world <= 1:  # one process: the first GPU if there is one
        return Context(device=torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu"))
    rank = int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))
    cuda = torch.cuda.is_available()
    device = torch.device("cpu")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", rank % torch.cuda.device_count()))
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    return Context(rank, world, device)


def shard(items: Any, ctx: Context) -> Any:
    """This process's part of a global batch ``items``: every ``world``-th, from ``rank``."""
    return items[ctx.rank :: ctx.world]
