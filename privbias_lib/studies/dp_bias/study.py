"""Study 1 as a :class:`~privbias_lib.study.Study`."""

from __future__ import annotations

import pandas as pd

from ...hashing import frame_hash
from ...models import check_top_layers
from ...study import Study
from . import data as data_
from . import results, runs
from .baseline import frozen_feature_baseline
from .params import DPBiasParams


class DPBias(Study):
    key = "01_dp_bias"
    title = "DP and bias: AUC-based bias metrics across privacy levels"
    Params = DPBiasParams
    model_task = "classification"

    def check(self, params: DPBiasParams, *, here: bool = True) -> None:
        super().check(params, here=here)
        check_top_layers(params.model, params.top_layers)

    def load_data(self, params: DPBiasParams) -> pd.DataFrame:
        data = data_.load_data(params)
        data_.check_distribution(params, data)  # a setting the data cannot supply fails now
        return data

    def data_fingerprint(self, params: DPBiasParams, data: pd.DataFrame) -> str:
        return frame_hash(data[["id", "text", "label", "split"]])

    def describe_data(self, params: DPBiasParams, data: pd.DataFrame) -> dict:
        return {
            "dataset": params.dataset,
            "source": params.data_source,
            "sha256": self.data_fingerprint(params, data),
            "examples": data.split.value_counts().to_dict(),
        }

    def plan(self, params: DPBiasParams, data: pd.DataFrame, done: dict):
        return runs.plan(params, done)

    def compute(self, params, data, run, context) -> dict:
        if run.spec["experiment"] == runs.BASELINE:
            return {**run.spec, **frozen_feature_baseline(params, data)}
        return runs.train_and_score(params, run.spec, data)

    def tidy(self, params: DPBiasParams, data: pd.DataFrame, records: list[dict]):
        return results.results_table(params, records, data)

    def seeds(self, params: DPBiasParams) -> list[int]:
        return sorted(set(params.seeds) | set(params.dist_seeds))


STUDY = DPBias()
