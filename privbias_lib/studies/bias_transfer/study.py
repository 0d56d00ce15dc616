"""Study 4 as a :class:`~privbias_lib.study.Study`."""

from __future__ import annotations

from ...repro import set_seed
from ...study import Study
from . import data as data_
from . import results, runs
from .data import StudyData
from .params import BiasTransferParams


class BiasTransfer(Study):
    key = "04_bias_transfer"
    title = "Bias transfer from pre-trained to prompted causal LMs"
    Params = BiasTransferParams
    model_task = "causal-lm"

    def load_data(self, params: BiasTransferParams) -> StudyData:
        return data_.load_data(params)

    def plan(self, params: BiasTransferParams, data: StudyData, done: dict):
        return runs.plan(params)

    def context(self, params: BiasTransferParams, data: StudyData):
        set_seed(params.sample_seed)  # deterministic kernels
        return runs.LoadedModel(params)

    def compute(self, params, data, run, context) -> dict:
        return runs.compute(params, data, run.spec, context)

    def tidy(self, params: BiasTransferParams, data: StudyData, records: list[dict]):
        scores: dict = {}
        for run, payload in zip(runs.plan(params), records, strict=True):
            scores.setdefault(run.spec["model"], {})[run.spec["run"]] = payload
        return results.measures(params, data, scores)

    def seeds(self, params: BiasTransferParams) -> list[int]:
        return [params.sample_seed, params.few_shot_seed]


STUDY = BiasTransfer()
