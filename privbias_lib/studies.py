"""The four study notebooks, their parameter profiles, and running them with papermill."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import yaml

PROFILES = ("smoke", "cpu", "paper")
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Study:
    """One study: its notebook and the folder of its parameter profiles."""

    key: str
    title: str

    @property
    def notebook(self) -> Path:
        return ROOT / "notebooks" / f"{self.key}.ipynb"

    def params_file(self, profile: str) -> Path:
        if profile not in PROFILES:
            raise ValueError(f"profile={profile!r} is not one of {list(PROFILES)}")
        return ROOT / "notebooks" / "params" / self.key / f"{profile}.yaml"

    def exists(self) -> bool:
        return self.notebook.is_file()


STUDIES = {
    s.key: s
    for s in [
        Study("01_dp_bias", "DP and bias: AUC-based bias metrics across privacy levels"),
        Study("02_ew_tune", "EW-Tune: the Edgeworth accountant and calibrated noise"),
        Study("03_lora_vs_dp", "LoRA vs DP: memorisation of sensitive tokens"),
        Study("04_bias_transfer", "Bias transfer from pre-trained to prompted causal LMs"),
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


def execute(study: Study, profile: str, output_dir: Path) -> Path:
    """Run ``study``'s notebook with ``profile`` through papermill into ``output_dir``.

    The notebook receives ``OUTPUT_DIR`` and writes its results there; the executed
    notebook is saved beside them. Returns the executed notebook's path.
    """
    import papermill

    output_dir.mkdir(parents=True, exist_ok=True)
    params = {**load_profile(study, profile), "OUTPUT_DIR": str(output_dir)}
    executed = output_dir / f"{study.key}.ipynb"
    start = time.perf_counter()
    papermill.execute_notebook(
        str(study.notebook),
        str(executed),
        parameters=params,
        kernel_name="python3",
        cwd=str(study.notebook.parent),
        progress_bar=False,
        log_output=False,
    )
    print(f"  {study.key}: {time.perf_counter() - start:.0f} s -> {executed}")
    return executed


def stage_book(runs_root: Path, profile: str, book_dir: Path = ROOT / "book") -> list[str]:
    """Copy each study's executed notebook (``runs_root/<key>/<profile>``) into
    ``book_dir/studies`` for jupyter-book; a study not yet run gets its clean notebook,
    so the book always builds. Returns one line per study saying which was used."""
    import shutil

    target = book_dir / "studies"
    target.mkdir(parents=True, exist_ok=True)
    lines = []
    for study in STUDIES.values():
        if not study.exists():
            continue
        executed = Path(runs_root) / study.key / profile / f"{study.key}.ipynb"
        source = executed if executed.is_file() else study.notebook
        shutil.copyfile(source, target / f"{study.key}.ipynb")
        what = f"executed ({profile})" if source == executed else "not executed (no run found)"
        lines.append(f"{study.key}: {what}")
    return lines
