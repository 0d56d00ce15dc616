"""Study 3's trajectories: checkpoints during training, the comparison at matched utility
(against hand-made curves), exposure's chance level, and checkpoint evaluation against a
separate evaluation of the saved checkpoint."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from notebook_checks import profile_params, smoke_params

from privbias_lib.metrics.memorisation import (
    MIA_ATTACKS,
    chance_exposure,
    exposure,
    token_logprobs,
)
from privbias_lib.store import RunStore
from privbias_lib.studies import lora_vs_dp as study
from privbias_lib.studies.lora_vs_dp import trajectory as tr
from privbias_lib.studies.lora_vs_dp.verdict import (
    lora_below_full_at_matched_utility,
    lora_like_dp_at_matched_utility,
)

STUDY = study.STUDY

# --- checkpoints and the interpolation -----------------------------------------------------


def test_checkpoints_double_up_to_the_last_step():
    assert tr.checkpoint_steps(22, 5) == [1, 3, 6, 11, 22]  # 22/16 = 1.4, 22/8 = 2.75, ...
    assert tr.checkpoint_steps(3, 3) == [1, 2, 3]  # 0.75 -> 1, 1.5 -> 2
    assert tr.checkpoint_steps(4, 8) == [1, 2, 4]  # duplicates dropped, never step 0
    assert tr.checkpoint_steps(10, 1) == [10]
    with pytest.raises(ValueError):
        tr.checkpoint_steps(0, 3)


def test_interpolation_at_matched_utility_on_a_hand_made_curve():
    u, leak = [3.0, 2.0, 1.0], [0.0, 0.2, 1.0]
    assert tr.interpolate_at_utility(u, leak, 1.5) == pytest.approx(0.6)  # halfway 0.2 -> 1.0
    assert tr.interpolate_at_utility(u, leak, 2.5) == pytest.approx(0.1)
    assert tr.interpolate_at_utility(u, leak, 1.0) == pytest.approx(1.0)  # exactly a point
    assert tr.interpolate_at_utility(u, leak, 3.2) == 0.0  # the start already reaches it
    assert math.isnan(tr.interpolate_at_utility(u, leak, 0.5))  # never reached
    # not monotone: the *first* crossing counts (3 -> 1 crosses 1.5 at t = 3/4)
    wiggly_u, wiggly_leak = [3.0, 1.0, 2.0, 0.5], [0.0, 0.4, 0.1, 0.9]
    assert tr.interpolate_at_utility(wiggly_u, wiggly_leak, 1.5) == pytest.approx(0.3)


def test_exposure_chance_level_by_hand():
    # n = 2: ranks 1 and 2, exposures 1 and 0 bits -> 1/2
    assert chance_exposure(2) == pytest.approx(0.5)
    # n = 4: (2 + 1 + log2(4/3) + 0) / 4
    assert chance_exposure(4) == pytest.approx((2 + 1 + math.log2(4 / 3)) / 4)
    n = 1000  # the mean of exact exposures over every rank of a space of 1000
    scores = -np.arange(n, dtype=float)
    by_rank = np.mean([exposure(scores[k], scores) for k in range(n)])
    assert chance_exposure(n) == pytest.approx(by_rank, abs=1e-9)
    assert chance_exposure(10**6) == pytest.approx(math.log2(math.e), abs=1e-4)  # Stirling
    with pytest.raises(ValueError):
        chance_exposure(0)


# --- hand-made trajectories ----------------------------------------------------------------


def _point(step, member_gain, test_gain, utility, n=10, dialogues=4):
    """A trajectory point whose pooled leakage is ``member_gain - test_gain`` and whose
    utility is ``utility`` (every dialogue alike, so resampling changes nothing)."""

    def split(gain, nll):
        return {
            "n": [[n, n]] * dialogues,
            "gain": [[gain * n, 0.0]] * dialogues,
            "nll": [[0.0, nll * n]] * dialogues,
        }

    return {
        "step": step,
        "members": split(member_gain, 0.0),
        "test": split(test_gain, utility),
        "mia_auc": {"reference": 0.5 + member_gain / 4},
        "canaries": [],
    }


def _record(label, points):
    method = label.split("-r")[0]
    return {"model": "m", "label": label, "method": method, "trajectory": points}


RECORDS = [
    _record("full", [_point(0, 0, 0, 3.0), _point(1, 0.2, 0, 2.0), _point(2, 1.0, 0, 1.0)]),
    _record("lora-r8", [_point(0, 0, 0, 3.0), _point(2, 0.1, 0, 2.5), _point(4, 0.3, 0, 2.0)]),
    _record("dp_full", [_point(0, 0, 0, 3.0), _point(2, 0.01, 0, 2.9)]),
]


def test_measures_pool_tokens_as_the_end_of_training_report_does():
    v = tr.measures(RECORDS[0]["trajectory"])
    assert v["utility_loss"].tolist() == pytest.approx([3.0, 2.0, 1.0])
    assert v["leakage"].tolist() == pytest.approx([0.0, 0.2, 1.0])


def test_matched_utility_reads_each_run_where_it_reaches_the_level():
    # levels: shares of full's gain 3.0 -> 1.0: 0.25 -> 2.5, 0.5 -> 2.0, 0.75 -> 1.5
    m = tr.matched_utility(RECORDS, [0.25, 0.5, 0.75], bootstrap=50, seed=0)
    got = m.set_index(["share", "label"])
    assert got.loc[(0.5, "full"), "utility_level"] == pytest.approx(2.0)
    assert got.loc[(0.25, "full"), "leakage"] == pytest.approx(0.1)
    assert got.loc[(0.75, "full"), "leakage"] == pytest.approx(0.6)
    assert got.loc[(0.25, "lora-r8"), "leakage"] == pytest.approx(0.1)
    assert got.loc[(0.5, "lora-r8"), "leakage"] == pytest.approx(0.3)
    assert not got.loc[(0.75, "lora-r8"), "reached"]
    assert not got.loc[(0.25, "dp_full"), "reached"]  # DP stops at 2.9
    # identical dialogues: every bootstrap replicate gives the point estimate
    reached = m[m.reached]
    assert np.allclose(reached.leakage_ci_low, reached.leakage) and np.allclose(
        reached.leakage_ci_high, reached.leakage
    )
    assert got.loc[(0.5, "lora-r8"), "mia_auc_reference"] == pytest.approx(0.5 + 0.3 / 4)


def test_without_bootstrap_the_comparison_has_estimates_and_no_intervals():
    """BOOTSTRAP = 0 is allowed ("none"): the same estimates, NaN intervals."""
    shares, pairs = [0.25, 0.5], tr.comparison_pairs(RECORDS)
    matched = tr.matched_utility(RECORDS, shares, bootstrap=0, seed=0)
    with_ci = tr.matched_utility(RECORDS, shares, bootstrap=50, seed=0)
    assert np.allclose(matched.leakage, with_ci.leakage, equal_nan=True)
    assert matched.leakage_ci_low.isna().all() and matched.leakage_ci_high.isna().all()
    diffs = tr.matched_differences(RECORDS, shares, 0, 0, pairs)
    assert diffs.difference.notna().any() and diffs.ci_low.isna().all()
    every_attack = [
        {
            **r,
            "trajectory": [
                {**p, "mia_auc": dict.fromkeys(MIA_ATTACKS, 0.5)} for p in r["trajectory"]
            ],
        }
        for r in RECORDS
    ]
    traj = tr.trajectory_table(every_attack, bootstrap=0, seed=0)
    assert traj.leakage.notna().all() and traj.leakage_ci_high.isna().all()


def test_paired_differences_and_the_verdicts_built_on_them():
    pairs = tr.comparison_pairs(RECORDS)
    assert pairs == [("lora-r8", "full"), ("lora-r8", "dp_full")]
    d = tr.matched_differences(RECORDS, [0.25, 0.5], 50, 0, pairs).set_index(["share", "b"])
    assert d.loc[(0.25, "full"), "difference"] == pytest.approx(0.0)
    assert d.loc[(0.5, "full"), "difference"] == pytest.approx(0.3 - 0.2)
    assert math.isnan(d.loc[(0.5, "dp_full"), "difference"])  # DP never gets there
    matched = tr.matched_utility(RECORDS, [0.25, 0.5], 50, 0)
    diffs = d.reset_index()
    assert lora_like_dp_at_matched_utility(matched, diffs).outcome == "not assessed"
    # at 50% LoRA leaks more than full, with a zero-width interval: not reproduced
    assert lora_below_full_at_matched_utility(diffs).outcome == "not reproduced"
    below = diffs.assign(difference=-0.1, ci_low=-0.2, ci_high=-0.05)
    assert lora_below_full_at_matched_utility(below).outcome == "reproduced"
    covers = diffs.assign(difference=-0.1, ci_low=-0.2, ci_high=0.05)
    assert lora_below_full_at_matched_utility(covers).outcome == "inconclusive"


def test_lora_like_dp_at_matched_utility_applies_the_75_percent_rule():
    matched = pd.DataFrame(
        [
            {
                "model": "m",
                "share": 0.1,
                "label": lbl,
                "method": lbl.split("-r")[0],
                "reached": True,
                "leakage": v,
            }
            for lbl, v in (("full", 0.10), ("lora-r8", 0.02), ("dp_lora-r8-eps64", 0.0))
        ]
    )
    row = {
        "model": "m",
        "share": 0.1,
        "utility_level": 3.0,
        "a": "lora-r8",
        "b": "dp_lora-r8-eps64",
        "difference": 0.02,
    }
    # allowed: 25% of full's excess 0.10 = 0.025
    close = pd.DataFrame([{**row, "ci_low": 0.0, "ci_high": 0.024}])
    assert lora_like_dp_at_matched_utility(matched, close).outcome == "reproduced"
    far = pd.DataFrame([{**row, "ci_low": 0.03, "ci_high": 0.05}])
    assert lora_like_dp_at_matched_utility(matched, far).outcome == "not reproduced"
    both = pd.DataFrame([{**row, "ci_low": 0.0, "ci_high": 0.05}])
    assert lora_like_dp_at_matched_utility(matched, both).outcome == "inconclusive"


def test_leakage_onset_is_the_first_checkpoint_clearly_above_zero():
    traj = pd.DataFrame(
        {
            "model": "m",
            "label": "full",
            "step": [0, 1, 2, 4],
            "utility_loss": [3.0, 2.5, 2.0, 1.0],
            "leakage": [0.0, 0.01, 0.05, 0.3],
            "leakage_ci_low": [0.0, -0.01, 0.01, 0.2],
        }
    )
    onset = study.leakage_onset(traj)
    assert onset.step.tolist() == [2] and onset.share_of_gain.iloc[0] == pytest.approx(0.5)


# --- checkpoints during real training ------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("lora", "private"),
    [(False, False), (True, True), (False, True)],
    ids=["full", "dp_lora", "dp_full"],
)
def test_checkpoint_evaluation_equals_evaluating_the_saved_checkpoint(
    lora, private, tiny_llama, smollm2_tokenizer
):
    """What the callback measures during training (Opacus hooks attached, in the middle of
    the run) is what a separate evaluation of that checkpoint's saved weights gives; and
    measuring checkpoints does not change the training."""
    from privbias_lib.training import Full, LoRA, PrivacyConfig, TrainConfig, train_causal_lm

    texts = [f"Customer: my code is {i:03d}. Agent: noted, thank you." for i in range(12)]
    probe = ["Customer: my code is 417.", "Agent: noted."]
    config = TrainConfig(
        trainable=LoRA(rank=4, alpha=8.0) if lora else Full(),
        learning_rate=5e-3,
        epochs=2,
        batch_size=4,
        max_length=32,
        seed=3,
        progress=False,
        privacy=PrivacyConfig(target_epsilon=8.0, delta=1e-3) if private else None,
    )

    def evaluate(model):
        return token_logprobs(model, smollm2_tokenizer, probe, max_length=32)

    tied = not private or lora  # untied for DP full: Opacus' ghost clipping
    seen, saved = {}, {}

    def checkpoint(model, step):
        seen[step] = evaluate(model)
        saved[step] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    result = train_causal_lm(
        tiny_llama(seed=2, tied=tied),
        smollm2_tokenizer,
        texts,
        config,
        checkpoints=[1, 3],
        on_checkpoint=checkpoint,
    )
    assert sorted(seen) == [1, 3] == result.history.checkpoint_steps
    if private:  # DP full takes Opacus' ghost clipping, DP-LoRA its hooks: both covered
        assert result.history.grad_sample_mode == ("hooks" if lora else "ghost")
    final = evaluate(result.model)
    for step, state in saved.items():
        result.model.load_state_dict(state)
        again = evaluate(result.model)
        for a, b in zip(seen[step], again, strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        assert not np.allclose(seen[step][0], final[0])  # a checkpoint, not the end
    plain = train_causal_lm(tiny_llama(seed=2, tied=tied), smollm2_tokenizer, texts, config)
    for a, b in zip(evaluate(plain.model), final, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_a_trajectory_starts_at_the_base_model_and_ends_at_the_end_of_training_measures(
    tiny_llama, smollm2_tokenizer, tmp_path
):
    folder = tmp_path / "tiny"
    tiny_llama(seed=1).save_pretrained(folder)
    smollm2_tokenizer.save_pretrained(folder)
    params = smoke_params(
        STUDY,
        MODELS=[str(folder)],
        METHODS=["full", "dp_lora"],
        DP_LORA_EPSILONS=[64.0],
        TRAJECTORY_POINTS=3,
        BOOTSTRAP=0,
    )
    data = study.load_data(params)
    runs = STUDY.execute(params, data, RunStore(tmp_path / "runs"))
    base = next(r for r in runs if r["label"] == study.BASE)
    for r in runs[1:]:
        traj = r["trajectory"]
        v = tr.measures(traj)
        assert [p["step"] for p in traj] == [0, *tr.checkpoint_steps(r["cost"]["steps"], 3)]
        assert v["leakage"][0] == 0 and v["utility_loss"][0] == pytest.approx(
            base["report"]["utility_loss"]
        )
        rep = r["report"]  # the subset is every dialogue here (6 < TRAJECTORY_TEXTS)
        assert v["leakage"][-1] == pytest.approx(rep["leakage"], abs=1e-12)
        assert v["utility_loss"][-1] == pytest.approx(rep["utility_loss"], abs=1e-12)
        assert v["non_sensitive_memorisation"][-1] == pytest.approx(
            rep["non_sensitive_memorisation"], abs=1e-12
        )
        assert traj[-1]["mia_auc"] == {a: m["auc"] for a, m in r["mia"].items()}
        assert [c["exposure"] for c in traj[-1]["canaries"]] == [
            c["exposure"] for c in r["canaries"]
        ]
    # a smaller subset: the same dialogues at every point, fixed by the data seed
    subset = tr.subset_indices(40, 8, 0, "members")
    assert len(set(subset)) == 8 and (subset == tr.subset_indices(40, 8, 0, "members")).all()
    assert not (subset == tr.subset_indices(40, 8, 0, "test")).all()


@pytest.mark.slow
def test_the_paper_profile_runs_end_to_end_on_cpu_with_a_tiny_override(
    tiny_llama, smollm2_tokenizer, tmp_path
):
    """The paper profile as it is, except a tiny local model, a few dialogues, one epoch,
    2-digit canaries and the CPU: every method, the trajectories, the matched comparison,
    the verdicts and the answer in words."""
    folder = tmp_path / "tiny"
    tiny_llama(seed=1).save_pretrained(folder)
    smollm2_tokenizer.save_pretrained(folder)
    params = profile_params(
        STUDY,
        "paper",
        MODELS=[str(folder)],
        N_TRAIN=10,
        N_TEST=6,
        EPOCHS=1,
        BATCH_SIZE=4,
        MAX_LENGTH=48,
        CANARY_DIGITS=2,
        CANARY_REPEATS=[1, 4],
        TRAJECTORY_TEXTS=4,
        BOOTSTRAP=50,
        EVAL_BATCH_SIZE=8,
        DEVICE="cpu",
        OUTPUT_DIR=str(tmp_path / "out"),
    )
    STUDY.check(params)
    data = study.load_data(params)
    runs = STUDY.execute(params, data, RunStore(tmp_path / "runs"))
    labels = [r["label"] for r in runs]
    assert labels == [
        "base",
        "full",
        "lora-r4",
        "lora-r16",
        "lora-r64",
        "dp_full",
        "dp_lora-r16-eps1",
        "dp_lora-r16-eps8",
        "dp_lora-r16-eps64",
    ]
    results = STUDY.tidy(params, data, runs)
    comparison = study.compare(runs, params)
    assert set(comparison.trajectories.label) == set(labels[1:])
    assert len(comparison.matched) == len(params.utility_shares) * (len(labels) - 1)
    assert results.subgroup.str.startswith("checkpoint/").any()
    assert results.subgroup.str.startswith("matched/").any()
    table = study.summary_table(results)
    verdicts = study.verdicts(
        table, study.claim_check(table), comparison.matched, comparison.differences
    )
    assert len(verdicts) == 5 and "Cost on" in study.answer(table, comparison)


def test_every_profile_has_trajectories_and_an_epsilon_curve():
    for name in ("smoke", "cpu", "paper"):
        p = profile_params(STUDY, name)
        assert p.trajectory_points >= 3 and len(p.utility_shares) >= 1
    cpu = profile_params(STUDY, "cpu")
    assert cpu.dp_lora_epsilons == [1.0, 8.0, 64.0] and cpu.canary_format == "line"


def test_the_answer_names_the_positive_control_and_dp_learning_by_the_numbers():
    from privbias_lib.studies.lora_vs_dp.verdict import _dp_curve, _positive_control

    canaries = pd.DataFrame(
        {"candidates": [1000, 1000], "chance (bits)": [chance_exposure(1000)] * 2,
         "largest possible (bits)": [math.log2(1000)] * 2, "full": [3.0, math.log2(1000)],
         "lora-r8": [1.0, 2.5]},
        index=pd.Index([1, 4], name="times inserted"),
    )  # fmt: skip
    [line] = _positive_control(None, canaries)
    assert "inserted 4 times at 9.97 bits, above the chance level 1.44" in line
    assert "p = 0.001" in line and "lora-r8 2.50" in line
    weak = canaries.assign(full=[1.5, 2.0])  # rank 250 of 1000: p = 0.25
    assert "not clearly above" in _positive_control(None, weak)[0]
    util = "utility: test loss (non-sensitive)"
    index = pd.MultiIndex.from_product(
        [["m"], ["base", "full", "dp_lora-r8-eps64", "dp_lora-r8-eps1"]]
    )
    table = pd.DataFrame(
        {util: [3.0, 1.0, 2.5, 3.0], "epsilon": [None, None, 64.0, 1.0]}, index=index
    )
    [line] = _dp_curve(table.rename_axis(["model", "label"]))
    assert "ε = 1: 0%, ε = 64: 25% of full fine-tuning's utility gain" in line
