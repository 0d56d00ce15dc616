"""Study 2 as a :class:`~privbias_lib.study.Study` (its runs are Part B's trainings;
Part A is computed by :mod:`.calibration`)."""

from __future__ import annotations

import pandas as pd

from ...models import check_top_layers
from ...study import Study
from . import data as data_
from . import results, runs
from .params import EWTuneParams


class EWTune(Study):
    key = "02_ew_tune"
    title = "EW-Tune: the Edgeworth accountant and calibrated noise"
    Params = EWTuneParams
    model_task = "classification"

    def check(self, params: EWTuneParams, *, here: bool = True) -> None:
        super().check(params, here=here)  # the model only when Part B trains (see `models`)
        if params.run_training and params.trainable == "top_layers":
            check_top_layers(params.model, params.top_layers)

    def load_data(self, params: EWTuneParams) -> pd.DataFrame:
        return data_.load_data(params)

    def data_fingerprint(self, params: EWTuneParams, data: pd.DataFrame) -> str:
        return data_.data_fingerprint(data)

    def describe_data(self, params: EWTuneParams, data: pd.DataFrame | None) -> dict:
        if data is None:
            return {"dataset": None, "source": None, "sha256": None, "examples": {}}
        return {
            "dataset": params.dataset,
            "source": params.data_source,
            "sha256": self.data_fingerprint(params, data),
            "examples": data.split.value_counts().to_dict(),
        }

    def plan(self, params: EWTuneParams, data: pd.DataFrame, done: dict):
        return runs.plan(params, int((data.split == "train").sum()))

    def compute(self, params, data, run, context) -> dict:
        return runs.train_and_evaluate(params, run.spec, data)

    def tidy(self, params: EWTuneParams, data, records: list[dict]) -> pd.DataFrame:
        return results.training_rows(records)

    def models(self, params: EWTuneParams) -> list[str]:
        return [params.model] if params.run_training else []

    def seeds(self, params: EWTuneParams) -> list[int]:
        return list(params.seeds) if params.run_training else []


STUDY = EWTune()
