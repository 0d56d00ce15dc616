"""The GPU recipe benchmarks' shared check: DP-SGD's summed per-sample gradients (sigma = 0,
a clipping norm no gradient reaches) against plain autograd on the same examples."""

from __future__ import annotations

import copy


def summed_gradient_errors(
    base, encoded, device: str, modes, physical: int = 8, causal: bool = False
) -> dict:
    """Relative error ||sum_i g_i - g|| / ||g|| per grad-sample mode, for ``base`` (a model
    in train mode with its trainable parameters set, dropout off) on every example of
    ``encoded`` (:func:`privbias_lib.training.batches.encode_classification`, or
    ``encode_causal`` with ``causal=True``: each example's mean next-token loss)."""
    import torch
    from torch import nn

    from privbias_lib.training.causal_lm import per_example_nll
    from privbias_lib.training.engine import _step, make_private, unwrap

    def loss(m, idx):
        batch = {k: v.to(device) for k, v in encoded.batch(idx).items()}
        if causal:
            return per_example_nll(m, batch)
        y = batch.pop("labels")
        return nn.functional.cross_entropy(m(**batch).logits, y, reduction="none")

    def flat(model):
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad])

    idx = list(range(len(encoded)))
    plain = copy.deepcopy(base)
    loss(plain, idx).sum().backward()
    reference = flat(plain)
    errors = {}
    for mode in modes:
        model = copy.deepcopy(base)
        params = [p for p in model.parameters() if p.requires_grad]
        module, opt = make_private(
            model,
            torch.optim.SGD(params, lr=0.0),
            noise_multiplier=0.0,
            max_grad_norm=1e6,
            expected_batch_size=len(idx),
            mode=mode,
            generator=torch.Generator(device=device).manual_seed(0),
        )
        _step(module, opt, loss, idx, physical, mode)
        dp = flat(model) * len(idx)
        unwrap(module)
        errors[mode] = float((dp - reference).norm() / reference.norm())
    return errors


def dropout_off(model) -> None:
    """Opacus records activations in train mode: switch dropout off for an exact check."""
    from torch import nn

    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    model.train()
