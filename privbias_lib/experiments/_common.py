"""What the study experiments share: loading a classifier quietly and the checks that
need no data."""

from __future__ import annotations

import contextlib

from ..notebook import ParameterError


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' logging (e.g. "classifier weights newly initialised",
    expected when a head is added) and its loading progress bars for the duration."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # "Loading weights" bars, one per model
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def check_classifier_and_device(model: str, device: str | None) -> None:
    """A built-in model must support classification; DEVICE 'cuda' needs a CUDA device."""
    import torch

    from ..models import BUILTIN_MODELS

    if model in BUILTIN_MODELS and "classification" not in BUILTIN_MODELS[model].tasks:
        raise ParameterError(f"parameter MODEL = {model!r} is not a classifier model")
    if device == "cuda" and not torch.cuda.is_available():
        raise ParameterError("parameter DEVICE = 'cuda' but no CUDA device is available")


def check_model_names(models) -> None:
    """MODELS: a non-empty list of distinct model names, hub ids or folders."""
    from ..notebook import bad, check_list

    for m in check_list("MODELS", models):
        if not isinstance(m, str) or not m:
            raise bad("MODELS", models, "a list of model names or hub ids")


def check_causal_lms_and_device(models, device: str | None) -> None:
    """Every built-in name in MODELS must be a causal LM; DEVICE 'cuda' needs a CUDA device."""
    import torch

    from ..models import BUILTIN_MODELS

    for m in models:
        if m in BUILTIN_MODELS and "causal-lm" not in BUILTIN_MODELS[m].tasks:
            raise ParameterError(f"parameter MODELS: {m!r} is not a causal language model")
    if device == "cuda" and not torch.cuda.is_available():
        raise ParameterError("parameter DEVICE = 'cuda' but no CUDA device is available")


def run_environment(device: str | None) -> dict:
    """What a stored run also depends on beyond its parameters: the device it ran on (None
    resolved as training resolves it) and the versions of the numeric libraries."""
    from importlib.metadata import version

    import torch

    resolved = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return {
        "device": resolved,
        **{p: version(p) for p in ("torch", "opacus", "dp-accounting", "transformers", "peft")},
    }


def check_top_layers(model: str, top_layers: int) -> None:
    """TOP_LAYERS must not exceed the encoder's layer count, read from the config of a
    built-in or local model folder (a hub model is checked when it loads)."""
    import json
    from pathlib import Path

    from ..models import BUILTIN_MODELS

    folder = None
    if model in BUILTIN_MODELS:
        found = BUILTIN_MODELS[model].locate()
        folder = found if isinstance(found, Path) else None
    elif Path(model).expanduser().is_dir():
        folder = Path(model).expanduser()
    config = folder / "config.json" if folder is not None else None
    if config is None or not config.is_file():
        return
    layers = json.loads(config.read_text()).get("num_hidden_layers")
    if isinstance(layers, int) and top_layers > layers:
        raise ParameterError(
            f"parameter TOP_LAYERS = {top_layers} is invalid: expected at most {layers}, "
            f"the number of encoder layers of {model!r}"
        )
