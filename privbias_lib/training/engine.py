"""One training loop for every task: non-private or DP-SGD (Opacus), with gradient
accumulation over physical batches, schedules, early stopping and a history.

DP-SGD uses Opacus's ``GradSampleModule`` and ``DPOptimizer`` directly, with the
project's own batch sampler (Poisson by default), so that the sampling, the number of
steps and the noise are exactly what the privacy record states.
"""

from __future__ import annotations

import logging
import math
import resource
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import pandas as pd
import torch
from torch import nn

from ..repro import set_seed
from .batches import poisson_batches, shuffled_batches, steps_per_epoch
from .config import METRICS_MIN, TrainConfig
from .privacy import PrivacyRecord, calibrate, make_record, resolve_delta

log = logging.getLogger(__name__)

LossFn = Callable[[nn.Module, list[int]], torch.Tensor]


@dataclass
class History:
    """What happened during training. ``step_loss`` is the mean per-example loss of each
    logical batch (NaN for an empty Poisson batch); ``epochs`` holds one dict per epoch
    with the validation metrics. ``peak_memory_mb`` is CUDA's peak allocation on GPU and
    the process's peak resident memory on CPU (``memory_kind`` says which)."""

    step_loss: list[float] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)
    steps: int = 0
    planned_steps: int = 0
    wall_time_s: float = 0.0
    setup_time_s: float = 0.0
    peak_memory_mb: float = 0.0
    memory_kind: str = ""
    trainable_parameters: int = 0
    total_parameters: int = 0
    stopped_early: bool = False
    best_epoch: int | None = None
    frozen_for_dp: list[str] = field(default_factory=list)

    def steps_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "step": range(1, len(self.step_loss) + 1),
                "loss": self.step_loss,
                "seconds": self.step_seconds,
                "learning_rate": self.learning_rate,
                "batch_size": self.batch_sizes,
            }
        )

    def epochs_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.epochs)

    def summary(self) -> dict:
        """Scalars only, for manifests and result tables."""
        out = {k: v for k, v in asdict(self).items() if not isinstance(v, list)}
        out["frozen_for_dp"] = list(self.frozen_for_dp)
        out["final_loss"] = self.step_loss[-1] if self.step_loss else math.nan
        return out


@dataclass
class TrainResult:
    """The trained model (hooks removed, eval mode), its history and, for a private
    run, its privacy record."""

    model: nn.Module
    history: History
    privacy: PrivacyRecord | None = None


def _peak_memory(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda max allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (2**20 if sys.platform == "darwin" else 2**10), "process peak RSS"


def _make_optimizer(config: TrainConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.learning_rate, weight_decay=config.weight_decay)


def _lambda_schedule(config: TrainConfig, total: int) -> Callable[[int], float]:
    warm = config.warmup_steps

    def factor(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if config.scheduler == "linear":
            return max(0.0, (total - step) / max(1, total - warm))
        return 1.0

    return factor


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    interactive = sys.stderr.isatty() or "ipykernel" in sys.modules
    return tqdm(
        total=total,
        desc=desc,
        disable=not enabled,
        mininterval=0.5 if interactive else 30.0,
        leave=interactive,
        dynamic_ncols=True,
    )


def _wrap_for_dp(module: nn.Module, mode: str) -> nn.Module:
    from opacus import GradSampleModule

    return GradSampleModule(
        module, batch_first=True, loss_reduction="mean", force_functorch=mode == "functorch"
    )


def unwrap(module: nn.Module) -> nn.Module:
    """Remove Opacus's hooks and per-sample buffers; return the plain module."""
    from opacus import GradSampleModule

    if isinstance(module, GradSampleModule):
        module.remove_hooks()
        inner = module._module
        for p in inner.parameters():
            for attr in ("grad_sample", "summed_grad", "_current_grad_sample", "_forward_counter"):
                if hasattr(p, attr):
                    delattr(p, attr)
        return inner
    return module


def fit(
    module: nn.Module,
    per_example_loss: LossFn,
    n: int,
    config: TrainConfig,
    *,
    device: torch.device,
    train_mode: Callable[[], None],
    evaluate: Callable[[], dict[str, float]] | None = None,
    desc: str = "train",
    frozen_for_dp: list[str] | None = None,
) -> tuple[History, PrivacyRecord | None, nn.Module]:
    """Train the parameters of ``module`` that require grad on ``n`` examples.

    ``per_example_loss(module, idx)`` returns the loss of each example ``idx`` (shape
    ``[len(idx)]``); the step's loss is their mean over the logical batch. Returns the
    history, the privacy record (private runs) and ``module`` without Opacus hooks.
    """
    t0 = time.perf_counter()
    history = History(frozen_for_dp=list(frozen_for_dp or []))
    generator = set_seed(config.seed)
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise ValueError("nothing to train: every parameter of the model is frozen")
    seen: dict[int, nn.Parameter] = {id(p): p for p in module.parameters()}
    history.trainable_parameters = sum(p.numel() for p in seen.values() if p.requires_grad)
    history.total_parameters = sum(p.numel() for p in seen.values())

    b = config.batch_size
    per_epoch = steps_per_epoch(n, b)
    planned = config.max_steps or config.epochs * per_epoch
    history.planned_steps = planned
    epochs = math.ceil(planned / per_epoch)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    optimizer = _make_optimizer(config, params)
    base_optimizer = optimizer
    dp = config.privacy
    record_args = None
    if dp is not None:
        from opacus.optimizers import DPOptimizer

        q = b / n
        delta = resolve_delta(dp, n)
        sigma = calibrate(dp, q, planned, delta)
        module = _wrap_for_dp(module, dp.grad_sample_mode)
        noise = torch.Generator(device=device).manual_seed(config.seed + 1)
        optimizer = DPOptimizer(
            base_optimizer,
            noise_multiplier=sigma,
            max_grad_norm=dp.max_grad_norm,
            expected_batch_size=b,
            loss_reduction="mean",
            generator=noise,
        )
        record_args = {"q": q, "sigma": sigma, "delta": delta}
        batches = (
            poisson_batches(n, q, planned, generator)
            if dp.poisson_sampling
            else shuffled_batches(n, b, planned, generator)
        )
    else:
        batches = shuffled_batches(n, b, planned, generator)

    if config.scheduler == "plateau":
        mode = "min" if config.validation_metric in METRICS_MIN else "max"
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(base_optimizer, mode=mode, factor=0.5)
        schedule = None
    else:
        plateau = None
        schedule = torch.optim.lr_scheduler.LambdaLR(
            base_optimizer, _lambda_schedule(config, planned)
        )

    history.setup_time_s = time.perf_counter() - t0
    better = (
        (lambda a, c: a < c) if config.validation_metric in METRICS_MIN else (lambda a, c: a > c)
    )
    best_value, best_state, bad_epochs = None, None, 0
    physical = config.physical
    train_mode()
    bar = _progress(planned, desc, config.progress)
    warnings.filterwarnings(  # Opacus's hooks on a top stack whose inputs need no grad
        "ignore", message="Full backward hook is firing", category=UserWarning
    )
    try:
        step = 0
        for epoch in range(1, epochs + 1):
            epoch_losses = []
            for _ in range(min(per_epoch, planned - step)):
                idx = next(batches)
                ts = time.perf_counter()
                loss = _step(module, optimizer, per_example_loss, idx, physical, dp is not None)
                if schedule is not None:
                    schedule.step()
                step += 1
                history.step_loss.append(loss)
                history.step_seconds.append(time.perf_counter() - ts)
                history.learning_rate.append(base_optimizer.param_groups[0]["lr"])
                history.batch_sizes.append(len(idx))
                epoch_losses.append(loss)
                bar.update(1)
                if step % 10 == 0 or step == planned:
                    bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            row = {"epoch": epoch, "step": step, "train_loss": _nanmean(epoch_losses)}
            if evaluate is not None:
                row.update(evaluate())
                train_mode()
            history.epochs.append(row)
            value = row.get(f"val_{config.validation_metric}")
            if plateau is not None and value is not None:
                plateau.step(value)
            if value is not None and (best_value is None or better(value, best_value)):
                best_value, bad_epochs, history.best_epoch = value, 0, epoch
                if config.early_stopping_patience is not None:
                    best_state = {id(p): p.detach().clone() for p in params}
            elif value is not None:
                bad_epochs += 1
                if (
                    config.early_stopping_patience is not None
                    and bad_epochs >= config.early_stopping_patience
                ):
                    history.stopped_early = step < planned
                    break
            if step >= planned:
                break
    finally:
        bar.close()
        module = unwrap(module)
    for p in params:
        p.grad = None
    if best_state is not None:
        with torch.no_grad():
            for p in params:
                p.copy_(best_state[id(p)])
    history.steps = len(history.step_loss)
    history.wall_time_s = time.perf_counter() - t0
    history.peak_memory_mb, history.memory_kind = _peak_memory(device)
    record = None
    if dp is not None:
        record = make_record(
            dp,
            **record_args,
            steps=history.steps,
            planned_steps=planned,
            dataset_size=n,
            expected_batch_size=b,
        )
    module.eval()
    return history, record, module


def _nanmean(xs: list[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return sum(xs) / len(xs) if xs else math.nan


def _step(module, optimizer, per_example_loss: LossFn, idx, physical: int, dp: bool) -> float:
    """One logical step: forward/backward per physical chunk, then one update. Gradients
    are cleared first and left in place after the update (for inspection)."""
    optimizer.zero_grad(set_to_none=True)
    if not idx:
        # an empty Poisson batch: DP-SGD still takes a (pure-noise) step
        for p in optimizer.params:
            p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device)
        optimizer.signal_skip_step(do_skip=False)
        optimizer.step()
        return math.nan
    chunks = [idx[i : i + physical] for i in range(0, len(idx), physical)]
    total = 0.0
    for j, chunk in enumerate(chunks):
        losses = per_example_loss(module, chunk)
        total += float(losses.detach().sum())
        if dp:
            # Opacus rescales by the chunk size: grad_sample holds per-example gradients
            losses.mean().backward()
            last = j == len(chunks) - 1
            optimizer.signal_skip_step(do_skip=not last)
            optimizer.step()  # clips and accumulates; adds noise and updates on the last
            if not last:
                optimizer.zero_grad(set_to_none=True)
        else:
            (losses.sum() / len(idx)).backward()
    if not dp:
        optimizer.step()
    return total / len(idx)
