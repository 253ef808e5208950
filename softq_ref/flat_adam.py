"""Adam on one contiguous buffer per network: the same numbers as per-parameter Adam, fewer kernels.

Adam is elementwise, so stepping one flat tensor that holds all of a network's parameters gives
bit-for-bit the parameters that `torch.optim.Adam(module.parameters(), foreach=True)` gives
(tests/test_fast_paths.py), with one kernel per Adam operation instead of one per parameter
tensor, and on CPU without torch.optim's per-step Python bookkeeping (perf README has the times).

How: every parameter of the module becomes a view of `flat`, and every parameter's `.grad` a
view of `flat.grad`, so autograd accumulates straight into the flat gradient (it adds in place
into an existing `.grad`). The module keeps ordinary `nn.Parameter`s: forward, state_dict and
load_state_dict work unchanged.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["FlatAdam"]


class FlatAdam(torch.optim.Adam):
    """`torch.optim.Adam(module.parameters(), lr, foreach=True)` on one flat buffer.

    Create it after the module is on its device: moving the module afterwards (`.to`) gives its
    parameters new storage, which `step` detects and reports.
    """

    def __init__(self, module: nn.Module, lr: float, **adam_kwargs):
        self.module_params = [p for p in module.parameters() if p.requires_grad]
        if not self.module_params:
            raise ValueError(f"FlatAdam: {type(module).__name__} has no parameters that require grad")
        first = self.module_params[0]
        if any(p.dtype != first.dtype or p.device != first.device for p in self.module_params):
            raise ValueError("FlatAdam: all parameters must share one dtype and device to live in one buffer, got "
                             f"{sorted({(str(p.dtype), str(p.device)) for p in self.module_params})}")
        with torch.no_grad():
            flat = torch.cat([p.detach().reshape(-1) for p in self.module_params])
        self.flat = nn.Parameter(flat)
        self.flat.grad = torch.zeros_like(flat)
        self._slices: list[tuple[int, int]] = []
        offset = 0
        for p in self.module_params:
            self._slices.append((offset, offset + p.numel()))
            offset += p.numel()
        self._bind_views()
        super().__init__([self.flat], lr=lr, foreach=True, **adam_kwargs)

    def _bind_views(self) -> None:
        for p, (a, b) in zip(self.module_params, self._slices):
            p.data = self.flat.data[a:b].view_as(p)
            p.grad = self.flat.grad[a:b].view_as(p)

    def __getstate__(self):  # torch.optim.Optimizer pickles/deep-copies only its own fields
        return {**super().__getstate__(), "flat": self.flat, "module_params": self.module_params,
                "_slices": self._slices}

    def __setstate__(self, state):
        super().__setstate__(state)
        if "flat" in state:  # a deep copy clones each Parameter separately: gather them into the copied buffer
            with torch.no_grad():
                for p, (a, b) in zip(self.module_params, self._slices):
                    self.flat.data[a:b].copy_(p.data.reshape(-1))
            if self.flat.grad is None:
                self.flat.grad = torch.zeros_like(self.flat)
            self._bind_views()

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the flat gradient in place (never None: the parameters' .grad are views of it)."""
        self.flat.grad.zero_()

    @torch.no_grad()
    def _gather_foreign_grads(self) -> None:
        """Code outside this optimizer (another optimizer's zero_grad(set_to_none=True), a manual
        `p.grad = ...`) may have replaced a parameter's .grad: copy it into the flat gradient and
        restore the view, so such a gradient is still stepped on, never silently ignored."""
        # Expected addresses come from the buffer each step: a deep copy gets a new buffer (__setstate__).
        data0, grad0, size = self.flat.data_ptr(), self.flat.grad.data_ptr(), self.flat.element_size()
        for p, (a, b) in zip(self.module_params, self._slices):
            if p.data_ptr() != data0 + a * size:
                raise RuntimeError(
                    "FlatAdam.step: a parameter no longer lives in the optimizer's flat buffer (the module was "
                    "moved with .to()/.cuda() or its parameters were reassigned after the optimizer was built). "
                    "Create the optimizer after moving the module, and load weights with load_state_dict.")
            if p.grad is not None and p.grad.data_ptr() == grad0 + a * size:
                continue
            view = self.flat.grad[a:b]
            if p.grad is None:
                view.zero_()
            else:
                view.copy_(p.grad.reshape(-1))
            p.grad = view.view_as(p)

    @torch.no_grad()
    def step(self, closure=None):
        self._gather_foreign_grads()
        group, state = self.param_groups[0], self.state[self.flat]
        if closure is not None or not state or not self._plain_cpu_adam(group):
            return super().step(closure)  # also the first step, which creates the state as torch does
        # torch.optim.adam._multi_tensor_adam's operations for one CPU tensor (its foreach ops loop
        # over exactly these per-tensor ops on CPU), without its per-step Python bookkeeping.
        beta1, beta2 = group["betas"]
        lr, eps = group["lr"], group["eps"]
        exp_avg, exp_avg_sq, step_t = state["exp_avg"], state["exp_avg_sq"], state["step"]
        grad = self.flat.grad
        step_t.add_(self._one, alpha=1.0)
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2)
        exp_avg_sq.addcmul_(grad, grad, value=1 - beta2)
        step = step_t.item()
        step_size = (lr / (1 - beta1 ** step)) * -1
        denom = exp_avg_sq.sqrt()
        denom.div_((1 - beta2 ** step) ** 0.5)
        denom.add_(eps)
        self.flat.addcdiv_(exp_avg, denom, value=step_size)
        return None

    _one = torch.tensor(1.0)

    def _plain_cpu_adam(self, group: dict) -> bool:
        """The configuration the fast step reproduces; anything else takes torch's own step."""
        return (self.flat.device.type == "cpu" and not group.get("amsgrad") and group.get("weight_decay", 0) == 0
                and not group.get("maximize") and not group.get("capturable") and not group.get("differentiable")
                and not group.get("fused") and not torch.is_tensor(group["lr"])
                and not any(torch.is_tensor(b) for b in group["betas"]))

    def load_state_dict(self, state_dict: dict) -> None:
        """Also accepts the state of a per-parameter Adam over the same module (older checkpoints)."""
        groups = state_dict["param_groups"]
        n_saved = sum(len(g["params"]) for g in groups)
        if len(groups) == 1 and n_saved == len(self.module_params) > 1:
            state_dict = _flatten_adam_state(state_dict)
        super().load_state_dict(state_dict)


def _flatten_adam_state(state_dict: dict) -> dict:
    """Per-parameter Adam state -> the state of one flat parameter (exp_avg etc. concatenated)."""
    group = dict(state_dict["param_groups"][0])
    ids = group["params"]
    per = [state_dict["state"].get(i) for i in ids]
    group["params"] = [0]
    group.pop("param_names", None)
    if all(s is None or not s for s in per):
        return {"state": {}, "param_groups": [group]}
    if any(s is None or not s for s in per):
        raise ValueError("FlatAdam.load_state_dict: the per-parameter Adam state has some parameters without "
                         "state (never stepped); cannot flatten it into one buffer")
    flat = {"step": per[0]["step"].clone()}
    for key in per[0]:
        if key != "step":
            flat[key] = torch.cat([s[key].reshape(-1) for s in per])
    return {"state": {0: flat}, "param_groups": [group]}
