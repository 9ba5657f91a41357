"""LARS against a per-parameter reference written out from its formula."""
import torch
from torch import nn

from selfsup.train.optim import build_optimizer


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Linear(4, 3, bias=False))


def _lars_reference(params: list[dict], lr: float, momentum: float, wd: float, trust: float = 0.001) -> None:
    """One LARS step per parameter: d = g + wd*w (weights only), d *= trust*|w|/|d| (weights only, 1 if a norm is 0),
    buf = momentum*buf + d (buf = d at first), w -= lr*buf."""
    for st in params:
        w, g = st["w"], st["g"]
        decayed = w.ndim > 1
        d = g + wd * w if decayed else g.clone()
        if decayed:
            wn, dn = w.norm(), d.norm()
            d = d * (trust * wn / dn if wn > 0 and dn > 0 else 1.0)
        st["buf"] = d if st.get("buf") is None else momentum * st["buf"] + d
        st["w"] = w - lr * st["buf"]


def test_lars_matches_the_per_parameter_formula_over_steps():
    torch.manual_seed(0)
    net = _net()
    with torch.no_grad():
        net[2].weight.zero_()  # zero weight norm: scale 1
    opt = build_optimizer("lars", net, lr=0.5, weight_decay=1e-2, momentum=0.9)
    ref = [{"w": p.detach().clone()} for p in net.parameters()]
    for _ in range(3):
        x = torch.randn(8, 5)
        opt.zero_grad()
        (net(x) - 1.0).square().mean().backward()
        for st, p in zip(ref, net.parameters()):
            st["g"] = p.grad.detach().clone()
        opt.step()
        _lars_reference(ref, lr=0.5, momentum=0.9, wd=1e-2)
        for st, p in zip(ref, net.parameters()):
            torch.testing.assert_close(p.detach(), st["w"], rtol=1e-5, atol=1e-7)
    assert ref[-1]["w"].abs().sum() > 0  # the zero weight tensor moved (scale 1 at its first step)


def test_biases_and_norm_parameters_train_at_norm_lr_scale_times_the_scheduled_rate():
    from selfsup.config import TrainConfig
    from selfsup.train.step import TrainStep
    from tests.methods.tiny import tiny_method, uint8_batch

    torch.manual_seed(0)
    net = _net()
    before = [p.detach().clone() for p in net.parameters()]
    opt = build_optimizer("lars", net, lr=0.5, weight_decay=0.0, momentum=0.9, norm_lr_scale=0.1)
    (net(torch.randn(8, 5)) - 1.0).square().mean().backward()
    grads = [p.grad.detach().clone() for p in net.parameters()]
    opt.step()
    for p, w, g in zip(net.parameters(), before, grads):
        if p.ndim == 1:  # LARS leaves biases and norm parameters to plain SGD; the first momentum buffer is g
            torch.testing.assert_close(p.detach(), w - 0.05 * g)
        else:
            torch.testing.assert_close(p.detach(), w - 0.5 * 0.001 * w.norm() / g.norm() * g)

    step = TrainStep(tiny_method("barlow_twins"), TrainConfig(steps=10, warmup_steps=2, optimizer="lars",
                                                               norm_lr_scale=0.024, precision="fp32"))
    step(uint8_batch(), 5)
    rates = {(g["lars"], g.get("fixed_lr", False)): g["lr"] for g in step.optimizer.param_groups if g["params"]}
    assert rates[(True, False)] == step.lr(5) and rates[(False, False)] == 0.024 * step.lr(5)
