"""The shape every study shares.

A study is one :class:`Study` subclass (its package under :mod:`privbias_lib.studies`
exports one instance, ``STUDY``): a key, a title, a parameters model and five hooks —
``check`` (what can be refused before any data is read), ``load_data``, ``plan`` (the
runs, as :class:`~privbias_lib.store.Run` values), ``compute`` (one run, a JSON-able
payload) and ``tidy`` (the payloads as the tidy results table). Everything else is
shared: parameters from the notebook's ``parameters`` cell and its profiles, validation,
the resumable run loop and its key policy, timings, tables, figures and the manifest.

In a notebook::

    run = STUDY.start(globals())      # validated parameters, output folder, run store
    data = run.load_data()
    records = run.execute(data)       # the plan, resumed from the store
    results = run.tidy(records)
    run.finish(results)               # results.csv and manifest.json
"""

from __future__ import annotations

import ast
import copy
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from .figures import save_figure
from .hashing import frame_hash
from .manifest import write_manifest
from .params import ParameterError, StudyParams, load_yaml, validate
from .paths import PROFILES
from .store import Run, RunStore, execute_plan
from .tables import write_results, write_table

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
FIGURES_FILE = "figures.json"  # each saved figure's caption (the book numbers and shows them)


class Study:
    """One study: declare ``key``, ``title`` and ``Params``; fill in the hooks."""

    key: ClassVar[str]  # "01_dp_bias": the notebook's file name and the runs' folder name
    title: ClassVar[str]
    Params: ClassVar[type[StudyParams]]
    # the task its models (parameter MODEL or MODELS) are loaded for: "classification" or
    # "causal-lm"; None when it loads none
    model_task: ClassVar[str | None] = None

    # ------------------------------------------------------------------ parameters

    @property
    def number(self) -> int:
        return int(self.key.split("_", 1)[0])

    @property
    def name(self) -> str:
        """The key without its number (``dp_bias``)."""
        return self.key.split("_", 1)[1]

    @property
    def notebook(self) -> Path:
        return NOTEBOOKS / f"{self.key}.ipynb"

    def profile_file(self, profile: str) -> Path:
        if profile not in PROFILES:
            raise ParameterError(f"unknown profile {profile!r}; known: {list(PROFILES)}")
        return NOTEBOOKS / "params" / self.key / f"{profile}.yaml"

    def defaults(self) -> dict[str, Any]:
        """The notebook's single ``parameters`` cell: ``{NAME: literal}``, the only place
        defaults are written (they are the ``cpu`` profile)."""
        return copy.deepcopy(_parameters_cell(self.notebook))

    def profile(self, profile: str) -> dict[str, Any]:
        """The overrides of a profile file (empty for ``cpu``: the notebook's defaults)."""
        import yaml

        path = self.profile_file(profile)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no {profile!r} profile for {self.key}")
        try:
            values = load_yaml(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ParameterError(f"{path}: not valid YAML ({_yaml_where(e)})") from None
        if not isinstance(values, dict):
            raise ParameterError(f"{path}: expected a mapping of parameter names to values")
        return values

    def resolve(self, profile: str = "cpu", overrides: Mapping | None = None) -> dict[str, Any]:
        """The parameters a run injects — the notebook's defaults, then the ``profile``,
        then ``overrides`` — validated. ``OUTPUT_DIR`` is left out: the runner sets it."""
        overrides = dict(overrides or {})
        if "OUTPUT_DIR" in overrides:
            raise ParameterError("OUTPUT_DIR is set by the runner: use --output instead")
        merged = {**self.defaults(), **self.profile(profile), **overrides}
        merged.pop("OUTPUT_DIR", None)
        try:
            self.validate({**merged, "OUTPUT_DIR": "unused"})
        except ParameterError as e:
            where = f"{self.key}, profile {profile}" + (
                f", overrides {overrides}" if overrides else ""
            )
            raise ParameterError(f"{where}: {e}") from None
        return merged

    def validate(self, values: Mapping[str, Any]) -> StudyParams:
        """The one validation, whatever the entry point (runner, sweep, notebook)."""
        return validate(self.Params, values)

    # ------------------------------------------------------------------ hooks

    def check(self, params: StudyParams, *, here: bool = True) -> None:
        """Refuse what can be refused before any data is read: every model name that cannot
        load for ``model_task`` (see :func:`~privbias_lib.models.check_model`) and, when the
        run is to execute ``here`` (not on a sweep's remote worker), the device."""
        if here:
            check_device(getattr(params, "device", None))
        if self.model_task is not None:
            from .models import check_model

            parameter = "MODELS" if "models" in type(params).model_fields else "MODEL"
            for name in self.models(params):
                check_model(parameter, name, self.model_task)

    def load_data(self, params: StudyParams) -> Any:
        raise NotImplementedError

    def data_fingerprint(self, params: StudyParams, data: Any) -> str:
        """What the runs read from ``data``, hashed (part of every run's key)."""
        if isinstance(data, pd.DataFrame):
            return frame_hash(data)
        return data.fingerprint()

    def describe_data(self, params: StudyParams, data: Any) -> dict:
        """The manifest's ``data`` entry (the data's own ``describe()`` where it has one)."""
        if hasattr(data, "describe") and not isinstance(data, pd.DataFrame):
            return data.describe()
        return {"sha256": None if data is None else self.data_fingerprint(params, data)}

    def plan(self, params: StudyParams, data: Any, done: dict[str, dict]) -> list[Run]:
        """The runs, in order. ``done`` maps the names of the runs finished so far to their
        payloads: a plan may grow once some are done (tuning: the final runs follow from
        the trials), and is asked again until it stops growing."""
        raise NotImplementedError

    def context(self, params: StudyParams, data: Any) -> Any:
        """Shared by the runs of one execution (a loaded model, base-model scores)."""
        return None

    def compute(self, params: StudyParams, data: Any, run: Run, context: Any) -> dict:
        raise NotImplementedError

    def tidy(self, params: StudyParams, data: Any, records: list[dict]) -> pd.DataFrame:
        raise NotImplementedError

    def models(self, params: StudyParams) -> list[str]:
        """The models the study loads (their fingerprints go into the manifest)."""
        if hasattr(params, "models"):
            return list(params.models)
        return [params.model] if hasattr(params, "model") else []

    def seeds(self, params: StudyParams) -> list[int]:
        return list(getattr(params, "seeds", []))

    # ------------------------------------------------------------------ machinery

    def execute(self, params: StudyParams, data: Any, store: RunStore) -> list[dict]:
        """Every run of the plan, resumed from ``store``."""
        from .models import model_fingerprint
        from .repro import run_environment

        common = {
            "study": self.key,
            "data": self.data_fingerprint(params, data),
            "library": _library_version(),
            "environment": run_environment(getattr(params, "device", None)),
        }
        context = None

        def compute(run: Run) -> dict:
            nonlocal context
            if context is None:
                context = self.context(params, data) or False
            return self.compute(params, data, run, context or None)

        done: dict[str, dict] = {}
        for phase in range(1, 1000):
            runs = self.plan(params, data, done)
            new = [r for r in runs if r.name not in done]
            if not new:
                return [done[r.name] for r in runs]
            payloads = execute_plan(
                new,
                compute,
                store,
                common=common,
                fingerprint=lambda name: model_fingerprint(name)["sha256"],
                task=f"study {self.number} runs" + (f" (part {phase})" if phase > 1 else ""),
            )
            done.update(zip((r.name for r in new), payloads, strict=True))
        raise RuntimeError(f"{self.key}: the plan kept growing")

    def start(self, namespace: Mapping[str, Any]) -> StudyRun:
        """Begin a notebook run: the parameters from ``namespace`` (the notebook's
        globals) validated and checked, the output folder, the run store."""
        values = {n: namespace[n] for n in self.Params.names() if n in namespace}
        params = self.validate(values)
        self.check(params)
        return StudyRun(self, params)


class Timer:
    """Named wall-clock timings for the manifest: ``with timer("train"): ...``."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


class StudyRun:
    """One execution of a study in a notebook: its parameters, output folder, run store
    and timer, and the calls that write what the notebook promises."""

    def __init__(self, study: Study, params: StudyParams):
        self.study, self.params = study, params
        self.out = Path(params.output_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.store = RunStore(self.out / "runs")
        self.timer = Timer()
        self.data: Any = None
        self.records: list[dict] = []
        self.captions: dict[str, str] = {}
        self.log = _route_logging(self.out / LOG_FILE)
        _notebook_style()

    def load_data(self) -> Any:
        with self.timer("data"):
            self.data = self.study.load_data(self.params)
        return self.data

    def execute(self, data: Any = None) -> list[dict]:
        data = self.data if data is None else data
        with self.timer("runs"):
            self.records = self.study.execute(self.params, data, self.store)
        return self.records

    def tidy(self, records: list[dict] | None = None) -> pd.DataFrame:
        records = self.records if records is None else records
        with self.timer("results"):
            return self.study.tidy(self.params, self.data, records)

    def save_figure(self, fig: Any, name: str, caption: str) -> Path:
        """Save a figure (PNG and its data) with the caption the book prints under it."""
        from ._io import write_json_atomic

        self.captions[name] = caption
        write_json_atomic(self.out / FIGURES_FILE, self.captions)
        return save_figure(fig, self.out, name)

    def save_table(self, frame: pd.DataFrame, name: str, *, index: bool = True) -> Path:
        return write_table(frame, self.out / name, index=index)

    def verdicts(self, verdicts: list) -> Any:
        """Save the run's verdicts (``verdicts.json``; the book shows them at the top of the
        chapter) and return the verdict box for the notebook to display."""
        from IPython.display import HTML

        from .verdicts import save_verdicts, verdict_html

        save_verdicts(verdicts, self.out)
        return HTML(verdict_html(verdicts, f"Verdict: {self.study.title}"))

    def finish(self, results: pd.DataFrame, **extra: Any) -> Path:
        """Write ``results.csv`` and, last, ``manifest.json`` (listing every file)."""
        from .models import model_fingerprint

        write_results(results, self.out)
        models = self.study.models(self.params)
        return write_manifest(
            self.out,
            study=self.study.key,
            parameters=self.params.to_dict(),
            seeds=self.study.seeds(self.params),
            models=[model_fingerprint(m) for m in models],
            data=self.study.describe_data(self.params, self.data),
            timings=self.timer.seconds,
            extra={"runs": len(self.records), **extra},
        )


def check_device(device: str | None) -> None:
    """DEVICE 'cuda' needs a CUDA device."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ParameterError("parameter DEVICE = 'cuda' but no CUDA device is available")


_CELLS: dict[Path, tuple[int, dict]] = {}  # notebook -> (mtime, parameters cell values)


def _parameters_cell(notebook: Path) -> dict[str, Any]:
    cached = _CELLS.get(notebook)
    stamp = notebook.stat().st_mtime_ns
    if cached is None or cached[0] != stamp:
        import nbformat

        nb = nbformat.read(notebook, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        if len(tagged) != 1:
            raise ValueError(f"{notebook}: expected one cell tagged 'parameters'")
        values = {}
        for node in ast.parse(tagged[0].source).body:
            if not (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)):
                raise ValueError(f"{notebook}: the parameters cell holds assignments only")
            values[node.targets[0].id] = ast.literal_eval(node.value)
        cached = _CELLS[notebook] = (stamp, values)
    return cached[1]


def _yaml_where(error: Exception) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem


def _library_version() -> str:
    from . import __version__

    return __version__


LOG_FILE = "privbias.log"


def _route_logging(target: Path) -> Path:
    """The library's log records, Python warnings and absl's (dp-accounting's RDP notices)
    go to ``target``, not to the cell's output (a notebook's page shows results, not
    conversion notices and library warnings)."""
    import logging

    handler = logging.FileHandler(target, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    logging.captureWarnings(True)
    for name in ("privbias_lib", "py.warnings", "absl"):  # absl: dp-accounting's notices
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if getattr(h, "_privbias", False)]:
            logger.removeHandler(old)
        handler._privbias = True  # replaced, not added twice, when a notebook re-runs
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return target


def _notebook_style() -> None:
    """The figures' and tables' look, the same in every study notebook."""
    import warnings

    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    warnings.filterwarnings("ignore", category=FutureWarning)
