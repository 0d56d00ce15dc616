"""Study 3 as a :class:`~privbias_lib.study.Study`."""

from __future__ import annotations

from ...repro import set_seed
from ...study import Study
from . import data as data_
from . import results, runs
from .data import StudyData
from .params import BASE, LoraVsDpParams


class LoraVsDp(Study):
    key = "03_lora_vs_dp"
    title = "LoRA vs DP: memorisation of sensitive tokens"
    Params = LoraVsDpParams
    model_task = "causal-lm"

    def load_data(self, params: LoraVsDpParams) -> StudyData:
        return data_.load_data(params)

    def plan(self, params: LoraVsDpParams, data: StudyData, done: dict):
        return runs.plan(params)

    def context(self, params: LoraVsDpParams, data: StudyData):
        # deterministic kernels (and on CUDA the same attention kernel) for every model
        # scored, the base model included, not only from the first training run on
        set_seed(params.data_seed)
        return runs.BaseScores(params, data)

    def compute(self, params, data, run, context) -> dict:
        if run.spec["method"] == BASE:
            return runs.base_measures(params, run.spec, data, context)
        base, labels = context.get(run.spec["model"])
        return runs.train_and_measure(params, run.spec, data, base, labels)

    def tidy(self, params: LoraVsDpParams, data: StudyData, records: list[dict]):
        return results.tidy_results(records, params)


STUDY = LoraVsDp()
