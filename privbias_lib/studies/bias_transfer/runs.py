"""Study 4's runs: per model, the intrinsic scoring (each pair's two versions) and one
prompted scoring per condition."""

from __future__ import annotations

import dataclasses
import time

from ...models import quiet_transformers
from ...prompting import Condition, choose_examples, prompt_texts, score_answers
from ...store import Run
from .data import StudyData
from .params import INTRINSIC, BiasTransferParams


def _uses_chat(params: BiasTransferParams, tokenizer) -> bool:
    has = bool(getattr(tokenizer, "chat_template", None))
    return {"auto": has, "always": True, "never": False}[params.chat]


def intrinsic_scores(params, model, tok, data: StudyData) -> dict:
    """Sentence log-likelihood of each pair's male and female version (plain text)."""
    from ...metrics.memorisation import token_logprobs

    by_id = data.items.set_index("id").sentence
    texts = by_id.loc[data.pairs.male_id].tolist() + by_id.loc[data.pairs.female_id].tolist()
    lps = token_logprobs(model, tok, texts, batch_size=params.batch_size, device=params.device)
    ll = [float(lp.sum()) for lp in lps]
    n = len(data.pairs)
    return {"male_ll": ll[:n], "female_ll": ll[n:]}


def prompted_scores(params, model, tok, data: StudyData, condition: Condition) -> dict:
    """Each sentence's two answers (gold, other) scored under ``condition``."""
    chat = _uses_chat(params, tok)
    examples = choose_examples(data.pool, condition, params.few_shot_seed)
    texts = prompt_texts(data.items, examples, condition, tok, chat)
    t0 = time.perf_counter()
    scores = score_answers(
        model, tok, texts, chat=chat, batch_size=params.batch_size, device=params.device
    )
    return {
        "scores": scores.tolist(),
        "chat": chat,
        "examples": examples.id.tolist(),
        "seconds": time.perf_counter() - t0,
    }


def plan(params: BiasTransferParams) -> list[Run]:
    """Per model: the intrinsic scoring, then one prompted scoring per condition."""
    config = {"batch": params.batch_size, "chat": params.chat}
    runs = []
    for name in params.models:
        runs.append(Run(f"{name}/{INTRINSIC}", {"model": name, "run": INTRINSIC}, name, config))
        for cond in params.all_conditions():
            spec = {
                "model": name,
                "run": cond.name,
                "condition": dataclasses.asdict(cond),
                "seed": params.few_shot_seed,
            }
            runs.append(Run(f"{name}/{cond.name}", spec, name, config))
    return runs


class LoadedModel:
    """The model the runs need, loaded on first use and kept until another is asked for
    (one model in memory at a time; the plan keeps each model's runs together)."""

    def __init__(self, params: BiasTransferParams):
        self.params = params
        self.name, self.loaded = None, None

    def get(self, name: str):
        if name != self.name:
            from ...models import load_model

            self.name, self.loaded = None, None  # free the previous model first
            with quiet_transformers():
                self.loaded = load_model(name, "causal-lm", device=self.params.device)
            self.name = name
        return self.loaded


def compute(params: BiasTransferParams, data: StudyData, spec: dict, models: LoadedModel):
    model, tok = models.get(spec["model"])
    if spec["run"] == INTRINSIC:
        return intrinsic_scores(params, model, tok, data)
    return prompted_scores(params, model, tok, data, Condition(**spec["condition"]))
