"""The four study notebooks, their parameter profiles, and executing one with papermill.

The batch machinery (validated runs, resumable sweeps, collecting results) is in
:mod:`privbias_lib.runner`; the book build in :mod:`privbias_lib.book`.
"""

from __future__ import annotations

import ast
import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROFILES = ("smoke", "cpu", "paper")
ROOT = Path(__file__).resolve().parent.parent
KERNEL = "python3"


@dataclass(frozen=True)
class Study:
    """One study: its notebook, the folder of its parameter profiles and the module
    (``privbias_lib.experiments.<module>``) whose ``params_class`` validates them."""

    key: str
    title: str
    module: str = ""
    params_class: str = ""

    @property
    def notebook(self) -> Path:
        return ROOT / "notebooks" / f"{self.key}.ipynb"

    def params_file(self, profile: str) -> Path:
        if profile not in PROFILES:
            raise ValueError(f"profile={profile!r} is not one of {list(PROFILES)}")
        return ROOT / "notebooks" / "params" / self.key / f"{profile}.yaml"

    def exists(self) -> bool:
        return self.notebook.is_file()

    def experiment(self):
        """The study's experiment module (its parameters class and ``fail_early``)."""
        return importlib.import_module(f"privbias_lib.experiments.{self.module}")

    def params_type(self):
        """The :class:`~privbias_lib.notebook.StudyParams` subclass of this study."""
        return getattr(self.experiment(), self.params_class)


STUDIES = {
    s.key: s
    for s in [
        Study(
            "01_dp_bias",
            "DP and bias: AUC-based bias metrics across privacy levels",
            "dp_bias",
            "DPBiasParams",
        ),
        Study(
            "02_ew_tune",
            "EW-Tune: the Edgeworth accountant and calibrated noise",
            "ew_tune",
            "EWTuneParams",
        ),
        Study(
            "03_lora_vs_dp",
            "LoRA vs DP: memorisation of sensitive tokens",
            "lora_vs_dp",
            "LoraVsDpParams",
        ),
        Study(
            "04_bias_transfer",
            "Bias transfer from pre-trained to prompted causal LMs",
            "bias_transfer",
            "BiasTransferParams",
        ),
    ]
}


def load_profile(study: Study, profile: str) -> dict:
    """The parameters of ``study``'s ``profile`` YAML file."""
    path = study.params_file(profile)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {profile!r} profile for {study.key}")
    params = yaml.safe_load(path.read_text()) or {}
    if not isinstance(params, dict):
        raise ValueError(f"{path}: expected a mapping of parameter names to values")
    return params


def notebook_defaults(study: Study) -> dict[str, Any]:
    """The values of the notebook's single ``parameters`` cell, ``{NAME: literal}``."""
    import nbformat

    nb = nbformat.read(study.notebook, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"{study.notebook}: expected one cell tagged 'parameters'")
    values = {}
    for node in ast.parse(tagged[0].source).body:
        if not (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)):
            raise ValueError(f"{study.notebook}: the parameters cell holds assignments only")
        values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def execute(
    study: Study,
    profile: str,
    output_dir: Path,
    parameters: dict | None = None,
    *,
    progress_bar: bool = False,
    log_file: Path | None = None,
) -> Path:
    """Run ``study``'s notebook through papermill into ``output_dir``.

    The notebook receives ``parameters`` (default: the ``profile`` file) and
    ``OUTPUT_DIR``, writes its results there, and is saved executed beside them. With
    ``log_file`` every cell's start and output is logged there. Returns the executed
    notebook's path.
    """
    import papermill

    output_dir = Path(output_dir).resolve()  # the kernel runs in notebooks/
    output_dir.mkdir(parents=True, exist_ok=True)
    params = parameters if parameters is not None else load_profile(study, profile)
    params = {**params, "OUTPUT_DIR": str(output_dir)}
    executed = output_dir / f"{study.key}.ipynb"
    logger = logging.getLogger("papermill")
    handler = None
    if log_file is not None:
        handler = logging.FileHandler(log_file, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # the log file, not the terminal, gets every cell
    try:
        papermill.execute_notebook(
            str(study.notebook),
            str(executed),
            parameters=params,
            kernel_name=KERNEL,
            cwd=str(study.notebook.parent),
            progress_bar=progress_bar,
            log_output=log_file is not None,
        )
    finally:
        if handler is not None:
            logger.removeHandler(handler)
            logger.propagate = True
            handler.close()
    return executed
