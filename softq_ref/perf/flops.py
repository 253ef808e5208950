"""Count the FLOPs of an update and measure this machine's matrix-multiply rate at the update's own shapes.

`count_flops(fn)` runs `fn` under torch's FLOP formulas (the registry of torch.utils.flop_counter's
FlopCounterMode), which count the matrix products (mm, addmm, bmm, baddbmm, ...) forward and backward: 2 m n k
per product. Elementwise ops (ReLU, tanh, Adam, kernel) are not counted; they are a few percent.

`record_matmuls(fn)` logs every matrix product `fn` executes (op, shapes, strides, dtype);
`MatmulReplay` re-runs exactly that list on fresh tensors, so "the matmul rate at the same shapes"
is the time of the update's own products alone, called from PyTorch the same way.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_flops", "record_matmuls", "MatmulReplay", "MatmulCall"]

_aten = torch.ops.aten
_MATMUL_OPS = {_aten.mm.default, _aten.addmm.default, _aten.bmm.default, _aten.baddbmm.default}


class _FlopCounter(TorchDispatchMode):
    """torch's FLOP formulas (FlopCounterMode's registry) without its module tracker, which refuses
    torch.autograd.grad(..., inputs=leaf) -- the SVGD score needs exactly that call."""

    def __init__(self):
        super().__init__()
        self.registry = FlopCounterMode(display=False).flop_registry
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = self.registry.get(func._overloadpacket)
        if formula is not None:
            self.total += int(formula(*args, **kwargs, out_val=out))
        return out


def count_flops(fn: Callable[[], Any]) -> int:
    """Total FLOPs (matrix products, forward + backward) of one call of `fn`, by torch's formulas."""
    with _FlopCounter() as counter:
        fn()
    return counter.total


@dataclass(frozen=True)
class MatmulCall:
    op: Any
    args: tuple  # ("T", shape, stride, dtype, device) for tensors, the value otherwise
    kwargs: tuple
    flops: int


def _mm_flops(op, shapes: list[tuple[int, ...]]) -> int:
    if op in (_aten.mm.default, _aten.addmm.default):
        a, b = shapes[-2], shapes[-1]
        return 2 * a[0] * a[1] * b[1]
    a, b = shapes[-2], shapes[-1]  # bmm / baddbmm
    return 2 * a[0] * a[1] * a[2] * b[2]


class _Recorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.calls: list[MatmulCall] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _MATMUL_OPS:
            desc = tuple(("T", tuple(a.shape), tuple(a.stride()), a.dtype, str(a.device)) if isinstance(a, torch.Tensor)
                         else a for a in args)
            shapes = [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]
            self.calls.append(MatmulCall(func, desc, tuple(sorted(kwargs.items())), _mm_flops(func, shapes)))
        return func(*args, **kwargs)


def record_matmuls(fn: Callable[[], Any]) -> list[MatmulCall]:
    """The matrix products executed by one call of `fn`, in order."""
    with _Recorder() as rec:
        fn()
    return rec.calls


class MatmulReplay:
    """Replays a recorded list of products on random tensors of the same shapes, strides and dtype."""

    def __init__(self, calls: list[MatmulCall], seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.calls = []
        for c in calls:
            args = []
            for a in c.args:
                if isinstance(a, tuple) and a and a[0] == "T":
                    _, shape, stride, dtype, device = a
                    size = 1 + sum((n - 1) * st for n, st in zip(shape, stride)) if all(shape) else 0
                    base = torch.randn(size, generator=g, dtype=dtype).to(device)
                    args.append(base.as_strided(shape, stride))  # same layout (transposes, broadcasts)
                else:
                    args.append(a)
            self.calls.append((c.op, tuple(args), dict(c.kwargs)))
        self.flops = sum(c.flops for c in calls)

    def run(self) -> None:
        for op, args, kwargs in self.calls:
            op(*args, **kwargs)

    def time(self, repeats: int = 1, sync: Callable[[], None] = lambda: None) -> float:
        """Seconds for one pass over the list (mean of `repeats` passes)."""
        sync()
        t0 = time.perf_counter()
        for _ in range(repeats):
            self.run()
        sync()
        return (time.perf_counter() - t0) / repeats
