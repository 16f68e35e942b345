"""Multi-process training with ``torch.distributed``, launched by ``torchrun``.

``torchrun --nproc-per-node K -m instcolor.cli train ...`` (or ``--nnodes``/``--rdzv-endpoint`` for
several machines) sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :meth:`DistributedContext.from_environment`
joins the process group (NCCL on CUDA, gloo on CPU) and the training loop wraps the trained network
in :class:`torch.nn.parallel.DistributedDataParallel`.

Batch-norm statistics must cover the global batch for a K-process run to equal a one-process run
with the same global batch. On CUDA that is :class:`torch.nn.SyncBatchNorm`; torch implements it for
GPUs only, so on CPU :class:`AllReduceBatchNorm2d` does the same with differentiable all-reduces.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistributedContext:
    """This process's place in a (possibly one-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_process_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls, device_type: str) -> DistributedContext:
        """Join the process group described by torchrun's environment (or run alone without one)."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        owns = False
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
            owns = True
        return cls(
            rank=dist.get_rank(),
            world_size=dist.get_world_size(),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
            owns_process_group=owns,
        )

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum of ``tensor`` over all processes (a copy; the input is left alone)."""
        tensor = tensor.detach().clone()
        if self.enabled:
            dist.all_reduce(tensor)
        return tensor

    def close(self) -> None:
        if self.owns_process_group and dist.is_initialized():
            dist.destroy_process_group()


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; its gradient is the sum of the processes' gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Differentiable sum of ``tensor`` over all processes."""
    return _AllReduceSum.apply(tensor)


class AllReduceBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the batches of all processes (any device).

    Mean and variance are computed in two passes, each an all-reduced sum; gradients flow back
    through the all-reduces. Outside training, or without a process group, it is a plain
    :class:`torch.nn.BatchNorm2d`. Its state dict is that of ``BatchNorm2d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        channels = x.shape[1]
        wide = x.to(torch.promote_types(x.dtype, torch.float32))  # statistics in fp32 at least
        count = wide.new_full((1,), x.numel() // channels)
        sums = all_reduce_sum(torch.cat([wide.sum(dim=(0, 2, 3)), count]))
        total = sums[-1]
        mean = sums[:channels] / total
        centred = wide - mean.view(1, -1, 1, 1)
        var = all_reduce_sum(centred.square().sum(dim=(0, 2, 3))) / total
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                unbiased = var * (total / (total - 1).clamp(min=1))
                self.running_mean.mul_(1 - factor).add_(mean.detach().to(self.running_mean.dtype), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased.detach().to(self.running_var.dtype), alpha=factor)
        out = centred * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
        if self.affine:
            out = out * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return out.to(x.dtype)


def synchronize_batch_norm(module: nn.Module, device: torch.device) -> nn.Module:
    """Make every BatchNorm2d of ``module`` use global-batch statistics (in place; returns it).

    The new layers hold the old layers' parameter and buffer objects."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in list(module.named_children()):
        if type(child) is nn.BatchNorm2d:
            synced = AllReduceBatchNorm2d(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            # The same parameter and buffer objects: optimisers and references stay valid.
            synced.weight, synced.bias = child.weight, child.bias
            synced.running_mean, synced.running_var = child.running_mean, child.running_var
            synced.num_batches_tracked = child.num_batches_tracked
            synced.train(child.training)
            setattr(module, name, synced)
        else:
            synchronize_batch_norm(child, device)
    return module
