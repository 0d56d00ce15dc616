"""One training loop for every task: non-private or DP-SGD (Opacus), with gradient
accumulation over physical batches, schedules, early stopping and a history.

DP-SGD uses Opacus's grad-sample modules and DP optimizers directly, with the
project's own batch sampler (Poisson by default), so that the sampling, the number of
steps and the noise are exactly what the privacy record states.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import math
import resource
import sys
import time
import warnings
from collections.abc import Callable, Collection, Sequence
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
    grad_sample_mode: str | None = None
    checkpoint_steps: list[int] = field(default_factory=list)
    checkpoint_seconds: float = 0.0

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


def _reset_peak_memory(device: torch.device) -> bool:
    """Start a fresh peak-memory window: CUDA's counters, or on Linux the process's
    resident-set high-water mark (writing 5 to ``/proc/self/clear_refs``), after handing
    freed heap back to the OS (glibc ``malloc_trim``) so that memory an earlier run freed
    does not count. False when the CPU peak cannot be reset (it then covers the whole
    process so far)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return True
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_memory(device: torch.device, reset: bool) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda max allocated"
    if reset:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 2**10, "process peak RSS during training"
        except OSError:
            pass
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


def _in_notebook_kernel() -> bool:
    """Whether this process is a Jupyter kernel (not merely one that imported ipykernel)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    interactive = sys.stderr.isatty() or _in_notebook_kernel()
    return tqdm(
        total=total,
        desc=desc,
        disable=not enabled,
        mininterval=0.5 if interactive else 30.0,
        leave=interactive,
        dynamic_ncols=True,
    )


def make_private(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    noise_multiplier: float,
    max_grad_norm: float,
    expected_batch_size: int,
    mode: str = "auto",
    generator: torch.Generator | None = None,
):
    """Wrap ``module`` for per-sample gradients and ``optimizer`` for clipping and noise.

    ``mode`` "hooks" and "functorch" materialise per-sample gradients; "ghost" (ghost
    clipping) computes only their norms and takes a second, reweighted backward pass.
    Losses are per-example means (``loss_reduction="mean"``); the noisy sum is divided
    by ``expected_batch_size``. "auto" means :func:`choose_grad_sample_mode`.
    """
    from opacus import GradSampleModule
    from opacus.grad_sample import GradSampleModuleFastGradientClipping
    from opacus.optimizers import DPOptimizer, DPOptimizerFastGradientClipping

    kwargs = {
        "noise_multiplier": noise_multiplier,
        "max_grad_norm": max_grad_norm,
        "expected_batch_size": expected_batch_size,
        "loss_reduction": "mean",
        "generator": generator,
    }
    if mode == "auto":
        mode = choose_grad_sample_mode(module)
    if mode == "ghost":
        tied = _tied_trainable(module)
        if tied:
            raise ValueError(
                f"grad_sample_mode='ghost' cannot clip tied trainable weights {tied} (Opacus "
                "does not support it): use 'hooks', or freeze or untie them"
            )
        wrapped = GradSampleModuleFastGradientClipping(
            module,
            batch_first=True,
            loss_reduction="mean",
            max_grad_norm=max_grad_norm,
            use_ghost_clipping=True,
        )
        return wrapped, DPOptimizerFastGradientClipping(optimizer, **kwargs)
    wrapped = GradSampleModule(
        module, batch_first=True, loss_reduction="mean", force_functorch=mode == "functorch"
    )
    return wrapped, DPOptimizer(optimizer, **kwargs)


def choose_grad_sample_mode(module: nn.Module) -> str:
    """The fastest exact mode for ``module`` (benchmarks/training.py, MiniLM on CPU):
    ghost clipping (1.5-2x faster than hooks, less memory) unless the trainable weights
    are LoRA adapters (hooks: 1.7x faster than ghost there) or tied (ghost can't)."""
    trainable = [n for n, p in module.named_parameters() if p.requires_grad]
    if _tied_trainable(module) or any("lora_" in n for n in trainable):
        return "hooks"
    return "ghost"


def _tied_trainable(module: nn.Module) -> list[str]:
    """Names of trainable parameters reachable from more than one module."""
    owners: dict[int, list[str]] = {}
    for mname, m in module.named_modules(remove_duplicate=False):
        for pname, p in m.named_parameters(recurse=False):
            if p.requires_grad:
                owners.setdefault(id(p), []).append(f"{mname}.{pname}" if mname else pname)
    return sorted({names[0] for names in owners.values() if len(set(names)) > 1})


def unwrap(module: nn.Module) -> nn.Module:
    """Remove Opacus's hooks and per-sample buffers; return the plain module."""
    from opacus.grad_sample.gsm_base import AbstractGradSampleModule

    if isinstance(module, AbstractGradSampleModule):
        module.remove_hooks()
        inner = module._module
        for p in inner.parameters():
            for attr in (
                "grad_sample",
                "summed_grad",
                "_current_grad_sample",
                "_forward_counter",
                "_norm_sample",
            ):
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
    lengths: Sequence[int] | None = None,
    checkpoints: Collection[int] = (),
    on_checkpoint: Callable[[int], None] | None = None,
) -> tuple[History, PrivacyRecord | None, nn.Module]:
    """Train the parameters of ``module`` that require grad on ``n`` examples.

    ``per_example_loss(module, idx)`` returns the loss of each example ``idx`` (shape
    ``[len(idx)]``); the step's loss is their mean over the logical batch. ``lengths``
    (tokens per example) lets ``config.length_chunks`` group a batch by length.
    ``on_checkpoint(step)`` is called after each step in ``checkpoints`` (it may evaluate
    the model; it must not train it, and its time is kept out of the step times). Returns
    the history, the privacy record (private runs) and ``module`` without Opacus hooks.
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
    memory_reset = _reset_peak_memory(device)

    optimizer = _make_optimizer(config, params)
    base_optimizer = optimizer
    dp = config.privacy
    record_args = None
    dp_mode = None
    if dp is not None:
        q = b / n
        delta = resolve_delta(dp, n)
        sigma = calibrate(dp, q, planned, delta)
        dp_mode = dp.grad_sample_mode
        if dp_mode == "auto":
            dp_mode = choose_grad_sample_mode(module)
        history.grad_sample_mode = dp_mode
        module, optimizer = make_private(
            module,
            base_optimizer,
            noise_multiplier=sigma,
            max_grad_norm=dp.max_grad_norm,
            expected_batch_size=b,
            mode=dp_mode,
            generator=torch.Generator(device=device).manual_seed(config.seed + 1),
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
    by_length = lengths if config.length_chunks is not None else None
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
                loss = _step(module, optimizer, per_example_loss, idx, physical, dp_mode, by_length)
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
                if on_checkpoint is not None and step in checkpoints:
                    tc = time.perf_counter()
                    on_checkpoint(step)
                    train_mode()
                    history.checkpoint_steps.append(step)
                    history.checkpoint_seconds += time.perf_counter() - tc
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
    history.peak_memory_mb, history.memory_kind = _peak_memory(device, memory_reset)
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


def _step(
    module,
    optimizer,
    per_example_loss: LossFn,
    idx,
    physical: float,
    dp_mode: str | None,
    lengths: Sequence[int] | None = None,
) -> float:
    """One logical step: forward/backward per physical chunk, then one update
    (``dp_mode`` None: non-private). A batch split into chunks is first sorted by
    ``lengths`` when given, so each chunk pads little. Gradients are cleared first and
    left in place after the update (for inspection)."""
    optimizer.zero_grad(set_to_none=True)
    if not idx:
        # an empty Poisson batch: DP-SGD still takes a (pure-noise) step
        for p in optimizer.params:
            if dp_mode == "ghost":
                p.grad = torch.zeros_like(p)
            else:
                p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device)
        optimizer.signal_skip_step(do_skip=False)
        optimizer.step()
        return math.nan
    size = len(idx) if math.isinf(physical) else int(physical)
    if lengths is not None and len(idx) > size:
        idx = sorted(idx, key=lambda i: lengths[i])
        size = math.ceil(len(idx) / math.ceil(len(idx) / size))  # even chunks, no tiny tail
    chunks = [idx[i : i + size] for i in range(0, len(idx), size)]
    total = 0.0
    for j, chunk in enumerate(chunks):
        losses = per_example_loss(module, chunk)
        total += float(losses.detach().sum())
        if dp_mode is None:
            (losses.sum() / len(idx)).backward()
            continue
        if dp_mode == "ghost":
            from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping

            # norms from a first pass, then p.grad = sum of clipped per-example gradients
            DPTensorFastGradientClipping(module, optimizer, losses, "mean").backward()
        else:
            # Opacus rescales by the chunk size: grad_sample holds per-example gradients
            losses.mean().backward()
        last = j == len(chunks) - 1
        optimizer.signal_skip_step(do_skip=not last)
        optimizer.step()  # clips and accumulates; adds noise and updates on the last
        if not last:
            optimizer.zero_grad(set_to_none=True)
    if dp_mode is None:
        optimizer.step()
    return total / len(idx)
