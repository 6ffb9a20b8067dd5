"""The differentiable uneven all-to-all every exchange is built on.

``torch.distributed.all_to_all_single`` moves rows along dim 0 with per-rank split sizes; this
module makes it an autograd function (the gradient is the reverse exchange), which newer torch
releases offer in ``torch.distributed.nn`` and torch 1.13 does not.
"""
from __future__ import annotations

from typing import Any, List, Optional, Tuple, cast

import torch
import torch.distributed as dist

__all__ = ["all_to_all", "keep_in_graph"]


def exchange_rows(x: torch.Tensor, send: List[int], recv: List[int], group: Optional[dist.ProcessGroup]) -> torch.Tensor:
    """One uneven all-to-all along dim 0, outside autograd."""
    out = x.new_empty((sum(recv),) + tuple(x.shape[1:]))
    dist.all_to_all_single(out, x.contiguous(), output_split_sizes=recv, input_split_sizes=send, group=group)
    return out


class _AllToAll(torch.autograd.Function):
    """all_to_all_single along dim 0 with uneven splits. Its gradient is the reverse exchange:
    the rows a rank received go back to the rank that sent them."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, send: List[int], recv: List[int], group: Optional[dist.ProcessGroup]) -> torch.Tensor:  # type: ignore[override]
        ctx.splits = (send, recv, group)
        return exchange_rows(x, send, recv, group)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Tuple[Optional[torch.Tensor], None, None, None]:  # type: ignore[override]
        send, recv, group = ctx.splits
        return exchange_rows(grad, recv, send, group), None, None, None


def all_to_all(x: torch.Tensor, send_splits: List[int], recv_splits: List[int],
               group: Optional[dist.ProcessGroup] = None) -> torch.Tensor:
    """Differentiable uneven all-to-all along dim 0.

    Args:
        x: this rank's rows, grouped by destination rank (``send_splits[d]`` rows for rank d).
        send_splits: rows this rank sends to each rank of the group.
        recv_splits: rows this rank receives from each rank of the group.
        group: the process group (default: the world).

    Returns:
        The received rows, grouped by source rank. Its gradient flows back to ``x`` through the
        reverse exchange.
    """
    return cast(torch.Tensor, _AllToAll.apply(x, list(send_splits), list(recv_splits), group))


def keep_in_graph(loss: torch.Tensor, *tensors: torch.Tensor) -> torch.Tensor:
    """``loss + 0·Σ t`` for each tensor.

    A rank whose loss does not use an exchange's output (it got no items this phase) must still
    run that exchange's backward, or the other ranks wait forever in it. Adding zero keeps the
    exchange in every rank's graph without changing the loss.

    Args:
        loss: the scalar loss.
        tensors: outputs of differentiable exchanges.

    Returns:
        The same loss value, now depending on every tensor.
    """
    for t in tensors:
        loss = loss + t.sum() * 0
    return loss
