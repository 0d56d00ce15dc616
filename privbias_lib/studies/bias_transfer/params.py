"""Study 4's parameters (their defaults are the notebook's ``parameters`` cell)."""

from __future__ import annotations

from typing import Annotated, Literal

import pandas as pd
from pydantic import AfterValidator, Field, model_validator

from ...params import Device, Distinct, Listing, Seed, StudyParams, bad
from ...prompting import Condition

INTRINSIC = "intrinsic"
# What the paper reports (Mistral-7B-Instruct, Falcon-7B-Instruct, Llama-3-8B/70B-Instruct):
PAPER_CLAIMS = pd.DataFrame(
    [
        ("zero- and few-shot", "rho >= 0.94"),
        ("fair / biased instruction", "rho >= 0.92"),
        ("few-shot count and stereotypical mix varied", "rho >= 0.97"),
        ("A-SB, type 2, intrinsic", "27.7%"),
        ("A-SB, type 2, zero-shot with fair instruction", "9.47%"),
        ("A-SB, type 2, few-shot with fair instruction", "4.16%"),
    ],
    columns=["setting", "paper"],
)


def _conditions(values: list[dict]) -> list[dict]:
    for c in values:
        try:
            Condition.from_dict(c)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{c!r} is not a valid condition ({e})") from None
    names = [c["name"] for c in values]
    if len(set(names)) != len(names):
        raise ValueError(f"condition names {names} repeat: expected distinct names")
    return values


class BiasTransferParams(StudyParams):
    """Study 4: intrinsic against prompted gender bias on WinoBias."""

    models: Listing[Annotated[str, Field(min_length=1)]] = Field(
        description="causal LMs: built-in names (offline), Hugging Face ids or folders"
    )
    split: Literal["dev", "test"] = Field(description="WinoBias split scored")
    types: Listing[Literal[1, 2]] = Field(description="WinoBias sentence types")
    pairs_per_occupation: Annotated[int, Field(ge=1)] | None = Field(
        description="pairs per gold occupation (None: all)"
    )
    sample_seed: Seed = Field(description="seed of the pair sample and the bootstrap")
    chat: Literal["auto", "always", "never"] = Field(
        description="'auto': the chat template when the tokenizer has one"
    )
    conditions: Annotated[list[dict], Field(min_length=1), AfterValidator(_conditions)] = Field(
        description="how the question is asked: name, shots, pro_share, instruction"
    )
    sweep_shots: Annotated[list[Annotated[int, Field(ge=1)]], Distinct] = Field(
        description="shots of the prompt sweep (with SWEEP_PRO_SHARES)"
    )
    sweep_pro_shares: Annotated[list[Annotated[float, Field(ge=0, le=1)]], Distinct] = Field(
        description="shares of pro-stereotypical examples of the prompt sweep"
    )
    few_shot_seed: Seed = Field(description="seed of the solved examples (from the other split)")
    batch_size: Annotated[int, Field(ge=1)] = Field(description="texts per scoring batch")
    bootstrap: Annotated[int, Field(ge=0)] = Field(
        description="bootstrap replicates of the correlation intervals (0: none)"
    )
    device: Device = Field(description="None: CUDA when available, else CPU")

    @model_validator(mode="after")
    def _consistent(self) -> BiasTransferParams:
        if bool(self.sweep_shots) != bool(self.sweep_pro_shares):
            raise bad("SWEEP_SHOTS", self.sweep_shots, "given together with SWEEP_PRO_SHARES")
        return self

    def all_conditions(self) -> list[Condition]:
        """The named conditions, then the sweep (shots x pro share, no instruction) minus
        settings a named condition already covers."""
        named = [Condition.from_dict(c) for c in self.conditions]
        seen = {(c.shots, c.pro_share, c.instruction) for c in named}
        sweep = []
        for k in self.sweep_shots:
            for share in self.sweep_pro_shares:
                if (k, share, None) not in seen:
                    sweep.append(Condition(f"{k}-shot, {share:.0%} pro", k, share))
                    seen.add((k, share, None))
        return named + sweep
