"""Study 1 (DP and bias): parameters, data, the paper's numbers, and the notebook run
end to end on the smoke profile with papermill."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from notebook_checks import (
    assert_bad_parameter_stops_early,
    profile_params,
    run_smoke,
    smoke_params,
)

from privbias_lib.accounting import epsilon
from privbias_lib.metrics import AUC_METRICS
from privbias_lib.params import ParameterError
from privbias_lib.runner import execute_notebook
from privbias_lib.store import RunStore, run_key
from privbias_lib.studies import PROFILES, dp_bias
from privbias_lib.tables import fold_constant_columns

STUDY = dp_bias.STUDY
REDDITBIAS_GROUPS = ["women", "black", "jewish", "muslim", "lgbtq"]


def smoke_values(**changes) -> dict:
    """The smoke profile as a notebook receives it, unvalidated."""
    return {**STUDY.resolve("smoke"), "OUTPUT_DIR": "/tmp/unused", **changes}


# --- parameters ------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_parses_and_validates(name):
    params = profile_params(STUDY, name)
    assert params.epsilons and params.seeds


def test_the_paper_profile_is_the_papers_recipe():
    """Islam et al. (2024): bert-base-uncased on Jigsaw, max length 128, the top encoder
    layer + pooler + classifier trained with AdamW lr 1e-3, ReduceLROnPlateau, up to 10
    epochs with early stopping (patience 3) on validation F1, logical batch 64, physical
    32; Opacus with delta 1e-6, clipping 1.0, Poisson sampling; epsilon 0.5/1/3/6/9 and a
    non-private baseline; seeds 2022, 42, 888. The profile overrides the notebook's
    defaults sparsely, so every value is checked as resolved: a change of the defaults
    must not change the paper's recipe unnoticed."""
    p = profile_params(STUDY, "paper")
    assert (p.dataset, p.model, p.top_layers, p.max_length) == (
        "jigsaw", "bert-base-uncased", 1, 128,
    )  # fmt: skip
    assert p.epsilons == [0.5, 1, 3, 6, 9] and p.include_non_private
    assert p.seeds == [2022, 42, 888]
    assert (p.delta, p.max_grad_norm, p.learning_rate) == (1e-6, 1.0, 1e-3)
    assert (p.batch_size, p.physical_batch_size, p.epochs) == (64, 32, 10)
    assert (p.scheduler, p.validation_metric, p.early_stopping_patience) == ("plateau", "f1", 3)
    assert (p.data_source, p.groups, p.max_train_examples, p.device) == (None, None, None, "cuda")
    assert p.subgroups == ["male", "female", "transgender", "white", "black", "asian"]
    # the recipe as the training receives it
    config = dp_bias.train_config(p, 0.5, 2022)
    assert config.trainable.k == 1 and config.optimizer == "adamw"
    assert (config.learning_rate, config.scheduler, config.epochs) == (1e-3, "plateau", 10)
    assert (config.batch_size, config.physical_batch_size, config.max_length) == (64, 32, 128)
    assert (config.validation_metric, config.early_stopping_patience) == ("f1", 3)
    assert config.privacy.target_epsilon == 0.5 and config.privacy.poisson_sampling
    assert (config.privacy.delta, config.privacy.max_grad_norm) == (1e-6, 1.0)
    assert dp_bias.train_config(p, None, 2022).privacy is None
    sweep = [r for r in dp_bias.plan_runs(p) if r["experiment"] == dp_bias.SWEEP]
    assert len(sweep) == 3 * (1 + 5)  # 3 seeds x (non-private + 5 epsilons)
    mhs = profile_params(STUDY, "paper", DATASET="measuring-hate-speech")
    assert mhs.subgroups == ["men", "women", "transgender", "white", "black", "asian"]


def _notebook():
    return nbformat.read(STUDY.notebook, as_version=4)


def test_the_notebooks_one_literal_parameters_cell_is_the_only_source_of_defaults():
    tagged = [c for c in _notebook().cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    defaults = STUDY.defaults()  # every value a literal (parsed with ast.literal_eval)
    assert list(defaults) == dp_bias.DPBiasParams.names()  # every parameter, in order
    STUDY.validate(defaults)  # the defaults are valid as they stand
    assert STUDY.profile("cpu") == {}  # the cpu profile is the parameters cell itself
    assert STUDY.resolve("cpu") == {k: v for k, v in defaults.items() if k != "OUTPUT_DIR"}


@pytest.mark.parametrize("profile", [p for p in PROFILES if p != "cpu"])
def test_a_profile_holds_only_values_that_differ_from_the_defaults(profile):
    defaults = STUDY.defaults()
    overrides = STUDY.profile(profile)
    assert overrides and set(overrides) <= set(defaults) - {"OUTPUT_DIR"}
    repeated = sorted(k for k, v in overrides.items() if defaults[k] == v)
    assert not repeated, f"{profile} repeats the notebook's defaults of {repeated}"


def test_notebook_is_committed_without_outputs():
    for cell in _notebook().cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.parametrize(
    "changes, rule",
    [
        ({"EPSILONS": [0]}, "greater than 0"),
        ({"EPSILONS": [1, 1]}, "appears twice"),
        ({"DATASET": "imdb"}, "'redditbias', 'jigsaw' or 'measuring-hate-speech'"),
        ({"GROUPS": ["men"]}, "a subset of ['women', 'black', 'jewish', 'muslim', 'lgbtq']"),
        ({"SEEDS": []}, "at least 1 item"),
        ({"BOOTSTRAP": 1}, "0 (no intervals) or at least 2"),
        ({"DIST_GROUP": "asian"}, "one of ['women', 'black', 'jewish', 'muslim', 'lgbtq']"),
        ({"DIST_SHARES": [1.2]}, "less than or equal to 0.95"),
        ({"ACCOUNTANT": "moments"}, "'pld', 'prv', 'rdp'"),
        ({"BOUND_ACCOUNTANT": "edgeworth"}, "'pld', 'prv' or 'rdp'"),
        ({"TUNING_GRID": {"EPOCHS": [1.5]}}, "whole numbers for EPOCHS"),
        ({"TUNING_GRID": {"DROPOUT": [0.1]}}, "'LEARNING_RATE', 'BATCH_SIZE', 'EPOCHS'"),
        ({"RECIPES": ["tuned", "tuned"]}, "appears twice"),
        ({"TUNING_TRIALS": 0.5}, "greater than or equal to 1"),
        ({"DATA_SOURCE": "some/hub-id"}, "None for the offline RedditBias"),
        ({"EPOCHS": 0}, "greater than or equal to 1"),
        ({"EPOCHS": 2.0}, "valid integer"),
    ],
)
def test_bad_parameters_are_named(changes, rule):
    with pytest.raises(ParameterError) as err:
        smoke_params(STUDY, **changes)
    ((name, value),) = changes.items()
    assert f"parameter {name} = {value!r} is invalid" in str(err.value)
    assert rule in str(err.value)


def test_unknown_parameter_is_named():
    with pytest.raises(ParameterError, match=r"unknown parameter\(s\) \['NOISE'\]; known: "):
        smoke_params(STUDY, NOISE=1.0)


def test_missing_parameter_is_named():
    values = smoke_values()
    del values["SEEDS"]
    with pytest.raises(ParameterError, match=r"missing parameter\(s\) \['SEEDS'\]"):
        STUDY.validate(values)


# --- data ------------------------------------------------------------------------------


def test_redditbias_split_and_caps():
    data = dp_bias.load_data(smoke_params(STUDY))
    sizes = data.split.value_counts()
    assert sizes["train"] == 320 and sizes["validation"] == sizes["test"] == 250  # exact caps
    assert not set(data[data.split == "train"].id) & set(data[data.split == "test"].id)
    for split in ("train", "test"):
        part = data[data.split == split]
        assert all(part[f"group_{g}"].sum() > 20 for g in REDDITBIAS_GROUPS)


def test_hub_dataset_from_a_local_file_in_the_hubs_layout(tmp_path):
    rng = np.random.default_rng(0)
    n = 600
    groups = ["male", "female", "transgender", "white", "black", "asian"]
    df = pd.DataFrame(
        {
            "id": range(n),
            "comment_text": [f"comment number {i} about things" for i in range(n)],
            "target": rng.random(n).round(2),
            **{g: np.where(rng.random(n) < 0.3, rng.random(n).round(2), np.nan) for g in groups},
        }
    )
    path = tmp_path / "train.csv"
    df.to_csv(path, index=False)
    params = smoke_params(
        STUDY, DATASET="jigsaw", DATA_SOURCE=str(path), DIST_GROUP=None,
        MAX_TRAIN_EXAMPLES=None, MAX_TEST_EXAMPLES=None,
    )  # fmt: skip
    data = dp_bias.load_data(params)
    assert len(data) == n and data.attrs["groups"] == groups
    expected = (df["black"].fillna(0) >= 0.5).to_numpy()
    assert (data.sort_values("id", key=lambda s: s.astype(int))["group_black"] == expected).all()


def test_distribution_train_set_has_the_asked_share_and_positive_rate():
    train = dp_bias.load_data(profile_params(STUDY, "cpu")).query("split == 'train'")
    part = dp_bias.distribution_train_set(train, "black", 0.2, 0.7, 1000, seed=0)
    member = part["group_black"]
    assert len(part) == 1000 and member.sum() == 200
    assert part.label[member].sum() == 140
    assert part.index.is_unique
    again = dp_bias.distribution_train_set(train, "black", 0.2, 0.7, 1000, seed=0)
    assert again.index.equals(part.index)
    with pytest.raises(ValueError, match=r"needs .* black positives"):
        dp_bias.distribution_train_set(train, "black", 0.9, 0.9, 5000, seed=0)


# --- the paper's numbers and the tables ------------------------------------------------------


def test_paper_numbers_are_transcribed_in_the_papers_layout():
    jig = dp_bias.paper_results("jigsaw")
    assert len(jig) == 6 * (3 * 6 + 1)
    table = dp_bias.paper_epsilon_table("jigsaw")
    assert list(table.index) == ["none", "0.5", "1", "3", "6", "9"]
    assert table.loc["none", ("subgroup_auc", "male")] == 0.895
    assert table.loc["0.5", ("bpsn_auc", "white")] == 0.692
    assert table.loc["9", ("overall_auc", "overall")] == 0.920
    mhs = dp_bias.paper_epsilon_table("measuring-hate-speech")
    assert mhs.loc["none", ("bnsp_auc", "asian")] == 0.769
    # the paper's claim, in its own numbers: every AUC metric is lower at epsilon 0.5
    changes = dp_bias.direction_summary(
        pd.DataFrame(columns=["experiment", "metric", "subgroup", "epsilon", "change"]), jig
    )
    assert (changes.paper_mean_change < 0).all()


def test_too_many_top_layers_fail_before_any_computation():
    params = smoke_params(STUDY, TOP_LAYERS=7)  # MiniLM: 6
    with pytest.raises(ParameterError, match=r"TOP_LAYERS = 7 .* at most 6"):
        STUDY.check(params)
    STUDY.check(smoke_params(STUDY, TOP_LAYERS=6))


def test_paper_summary_is_the_jigsaw_formula_by_hand():
    """0.25 overall + 0.75 mean of the three p = -5 power means, from the paper's row."""
    rows = {
        "subgroup_auc": [0.895, 0.898, 0.797, 0.798, 0.810, 0.887],
        "bpsn_auc": [0.886, 0.901, 0.838, 0.780, 0.792, 0.922],
        "bnsp_auc": [0.956, 0.948, 0.940, 0.963, 0.960, 0.924],
    }
    by_hand = {m: (sum(v**-5 for v in vals) / 6) ** (-1 / 5) for m, vals in rows.items()}
    summary = dp_bias.paper_summary_table("jigsaw")
    for m, value in by_hand.items():
        assert summary.loc["none", f"power_mean_{m}"] == pytest.approx(value, abs=1e-12)
        assert min(rows[m]) < value < np.mean(rows[m])  # leans on the worst subgroup
    expected = 0.25 * 0.946 + 0.75 * sum(by_hand.values()) / 3
    assert summary.loc["none", "jigsaw_summary"] == pytest.approx(expected, abs=1e-12)
    assert list(summary.index) == ["none", "0.5", "1", "3", "6", "9"]
    # the paper's own numbers: DP lowers the summary at every epsilon
    assert (summary.jigsaw_summary.iloc[1:] < summary.jigsaw_summary.iloc[0]).all()


def test_run_key_of_sweep_runs_ignores_the_distribution_settings():
    a = smoke_params(STUDY)
    b = smoke_params(STUDY, DIST_TRAIN_SIZE=200)
    first_sweep = lambda plan: next(r for r in plan if r.spec["experiment"] == dp_bias.SWEEP)  # noqa: E731
    sweep_a, sweep_b = first_sweep(dp_bias.plan(a)), first_sweep(dp_bias.plan(b))
    dist_a, dist_b = dp_bias.plan(a)[-1], dp_bias.plan(b)[-1]
    assert sweep_a.spec["experiment"] == dp_bias.SWEEP
    assert dist_a.spec["experiment"] == dp_bias.DISTRIBUTION

    def key(run, data="d", model="m"):
        return run_key(run, {"study": STUDY.key, "data": data}, model)

    assert key(sweep_a) == key(sweep_b)  # not retrained
    assert key(dist_a) != key(dist_b)
    assert key(sweep_a) != key(sweep_a, data="other data")
    assert key(sweep_a) != key(sweep_a, model="other weights")


def test_dp_change_is_the_difference_to_the_same_seeds_non_private_run():
    rows = []
    for seed, base in [(0, 0.8), (1, 0.9)]:
        for eps, drop in [("none", 0.0), ("1", 0.1), ("8", 0.02)]:
            rows.append(
                {
                    "experiment": dp_bias.SWEEP, "seed": seed, "share": np.nan,
                    "positive_rate": np.nan, "subgroup": "g", "metric": "subgroup_auc",
                    "epsilon": eps, "value": base - drop - 0.01 * seed,
                }
            )  # fmt: skip
    changes = dp_bias.dp_change(pd.DataFrame(rows))
    got = changes.set_index(["seed", "epsilon"]).change
    assert got[(0, "1")] == pytest.approx(-0.1) and got[(1, "8")] == pytest.approx(-0.02)
    assert len(changes) == 4


def test_distribution_statement_follows_the_slopes():
    """The printed finding names the trend per metric and rate; small slopes are flat."""
    change = {  # (rate, share) -> (subgroup, bpsn, bnsp) change
        (0.3, 0.1): (-0.30, -0.20, -0.40),
        (0.3, 0.4): (-0.29, -0.02, -0.70),
        (0.7, 0.1): (0.10, -0.20, 0.30),
        (0.7, 0.4): (0.40, 0.10, 0.21),
    }
    rows = [
        {"experiment": dp_bias.DISTRIBUTION, "subgroup": "black", "share": share,
         "positive_rate": rate, "metric": metric, "change": value, "seed": 0}
        for (rate, share), values in change.items()
        for metric, value in zip(AUC_METRICS, values, strict=True)
    ]  # fmt: skip
    text = dp_bias.describe_distribution(pd.DataFrame(rows), "black").splitlines()
    assert "subgroup_auc: -0.300 at share 0.1 -> -0.290 at 0.4" in text[1]
    assert text[1].endswith("about flat)")  # +0.003 per 10 points
    assert text[2].endswith("(+0.060 per 10 points of share: the change rises with the share"
                            " (a drop shrinks))")  # fmt: skip
    assert text[3].endswith("(-0.100 per 10 points of share: the change falls with the share"
                            " (a drop grows))")  # fmt: skip
    assert text[4].endswith("(+0.100 per 10 points of share: the change rises with the share"
                            " (a gain grows))")  # fmt: skip
    # a change that crosses zero gets no drop/gain wording; -0.03 per 10 points is not flat
    assert text[5].endswith("(+0.100 per 10 points of share: the change rises with the share)")
    assert text[6].endswith("(-0.030 per 10 points of share: the change falls with the share"
                            " (a gain shrinks))")  # fmt: skip


def test_run_store_ignores_corrupt_or_mismatched_files(tmp_path):
    store = RunStore(tmp_path)
    store.put("a" * 64, {"x": 1})
    assert store.get("a" * 64) == {"x": 1}
    path = next(tmp_path.glob("*.json"))
    stored = json.loads(path.read_text())
    stored["payload"]["x"] = 2  # edited by hand: checksum no longer matches
    path.write_text(json.dumps(stored))
    assert store.get("a" * 64) is None
    path.write_text("{not json")
    assert store.get("a" * 64) is None
    assert store.get("b" * 64) is None
    assert store.corrupt == {"a" * 64}  # a missing record is not a corrupt one
    # a missing or corrupt record is computed and stored; a stored one is returned as is
    assert store.get_or_compute("a" * 64, lambda: {"x": 3}) == {"x": 3}
    assert store.get_or_compute("a" * 64, lambda: {"x": 4}) == {"x": 3}


# --- the notebook, end to end ----------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    return run_smoke(STUDY, tmp_path_factory)


@pytest.mark.notebook
@pytest.mark.slow
def test_smoke_run_writes_every_group_and_epsilon(smoke_run):
    results = pd.read_csv(smoke_run / "results.csv", keep_default_na=False, na_values=[""])
    params = STUDY.resolve("smoke")
    sweep = results[results.experiment == dp_bias.SWEEP]
    assert set(sweep.epsilon.astype(str)) == {"none", *(f"{e:g}" for e in params["EPSILONS"])}
    for eps, part in sweep.groupby("epsilon"):
        auc = part[part.metric.isin(AUC_METRICS)]
        assert set(auc.subgroup) == set(REDDITBIAS_GROUPS), eps
    auc = results[results.metric.isin([*AUC_METRICS, "overall_auc"])]
    defined = auc.value.notna()
    assert auc.value[defined].between(0, 1).all()
    assert (auc.reason[~defined].fillna("") != "").all()
    assert auc.ci_lower[defined].le(auc.value[defined] + 1e-9).mean() > 0.9  # CI near value
    dist = results[results.experiment == dp_bias.DISTRIBUTION]
    assert set(dist.share.dropna()) == set(params["DIST_SHARES"])
    for name in ["metrics_vs_epsilon", "dp_change", "distribution"]:
        assert (smoke_run / f"{name}.png").stat().st_size > 10_000
        assert len(pd.read_csv(smoke_run / f"{name}.data.csv")) > 0  # the frame it shows


@pytest.mark.notebook
@pytest.mark.slow
def test_smoke_run_reports_epsilon_with_its_accountant_and_a_bound(smoke_run):
    results = pd.read_csv(smoke_run / "results.csv", keep_default_na=False, na_values=[""])
    privacy = pd.read_csv(smoke_run / "privacy.csv")
    params = STUDY.resolve("smoke")
    private_runs = results[(results.epsilon != "none")].run.unique()
    assert set(privacy.run) == set(private_runs)
    for _, row in privacy.iterrows():
        target = float(row.run.split("eps=")[1].split("/")[0])
        # never more than the target (less if early stopping took fewer steps)
        assert 0 < row.epsilon <= target * 1.01 and 0 < row.epsilon_bound <= target * 1.01
        assert row.accountant.startswith(params["ACCOUNTANT"])
        assert row.bound_by.startswith(params["BOUND_ACCOUNTANT"]) and "upper bound" in row.bound_by
        assert row.delta == params["DELTA"] and 1 <= row.steps <= row.planned_steps
        assert row.target_epsilon == target and row.sampling == "poisson"
        # the bound is an independent accountant, recomputed here from the run's q, sigma, T
        assert params["BOUND_ACCOUNTANT"] != params["ACCOUNTANT"]
        bound = params["BOUND_ACCOUNTANT"]
        again = epsilon(row.sample_rate, row.noise_multiplier, row.steps, row.delta, bound)
        assert row.epsilon_bound == pytest.approx(again, rel=1e-3)
        # smoke calibrates by RDP and bounds by PLD, which is never looser than RDP
        assert row.epsilon_bound <= row.epsilon * 1.001


@pytest.mark.notebook
@pytest.mark.slow
def test_the_shown_privacy_table_keeps_the_accountants_in_its_caption(smoke_run):
    privacy = pd.read_csv(smoke_run / "privacy.csv")
    params = STUDY.resolve("smoke")
    shown, caption = fold_constant_columns(
        privacy.set_index("run"), ["delta", "accountant", "bound_by", "sampling", "epsilon"]
    )
    assert f"accountant: {params['ACCOUNTANT']}" in caption
    assert f"bound_by: {params['BOUND_ACCOUNTANT']}" in caption and "sampling: poisson" in caption
    assert f"delta: {params['DELTA']:g}" in caption
    assert not {"delta", "accountant", "bound_by", "sampling"} & set(shown.columns)
    assert "epsilon" in shown.columns  # differs between the runs: stays a column
    assert len(shown) == len(privacy)


@pytest.mark.notebook
@pytest.mark.slow
def test_smoke_run_writes_its_tables(smoke_run):
    for name in ["epsilon_table.csv", "direction.csv", "summary.csv", "gaps.csv"]:
        assert len(pd.read_csv(smoke_run / name)) >= 2, name
    summary = pd.read_csv(smoke_run / "summary.csv", index_col=0)
    assert summary.loc["none", "overall_auc"] > 0.5  # the non-private model learned something
    assert (smoke_run / "gaps.png").stat().st_size > 10_000
    assert len(pd.read_csv(smoke_run / "gaps.data.csv")) > 0


@pytest.mark.notebook
@pytest.mark.slow
def test_smoke_run_manifest_is_complete(smoke_run):
    manifest = json.loads((smoke_run / "manifest.json").read_text())
    params = STUDY.resolve("smoke")
    assert {k: v for k, v in manifest["parameters"].items() if k != "OUTPUT_DIR"} == params
    assert manifest["seeds"] == sorted(set(params["SEEDS"]) | set(params["DIST_SEEDS"]))
    assert len(manifest["models"][0]["sha256"]) == 64
    assert len(manifest["data"]["sha256"]) == 64
    assert manifest["environment"]["packages"]["opacus"]
    assert {"data", "runs", "results"} <= set(manifest["timings_s"])
    assert "results.csv" in manifest["files"]
    # the yardstick, the sweep, every trial, the final runs of the seeds other than the
    # tuning seed (whose model is its chosen trial), and the distribution experiment
    settings = smoke_params(dp_bias.STUDY)
    trials = sum(len(dp_bias.trial_settings(settings, e)) for e in settings.epsilons)
    finals = len(params["EPSILONS"]) * len(set(params["SEEDS"]) - {params["TUNING_SEED"]})
    sweep = len(params["SEEDS"]) * (1 + len(params["EPSILONS"]))
    dist = 2 * len(params["DIST_SHARES"]) * len(params["DIST_POSITIVE_RATES"])
    assert manifest["runs"] == 1 + sweep + trials + finals + dist * len(params["DIST_SEEDS"])


@pytest.mark.notebook
@pytest.mark.slow
def test_rerun_resumes_from_finished_runs_with_identical_results(smoke_run, tmp_path):
    import shutil

    copy = tmp_path / "again"
    shutil.copytree(smoke_run, copy)
    (copy / "results.csv").unlink()
    execute_notebook(STUDY, copy, STUDY.resolve("smoke"))
    executed = nbformat.read(copy / f"{STUDY.key}.ipynb", as_version=4)
    text = "".join(
        o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs
    )
    manifest = json.loads((copy / "manifest.json").read_text())
    n = manifest["runs"]
    assert f"study 1 runs: {n} planned, {n} already done, 0 to compute" in text  # all reused
    assert manifest["timings_s"]["runs"] < 5  # nothing retrained
    a = pd.read_csv(smoke_run / "results.csv")
    b = pd.read_csv(copy / "results.csv")
    b = b[~b.metric.eq("train_seconds")].reset_index(drop=True)
    a = a[~a.metric.eq("train_seconds")].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.notebook
def test_a_bad_parameter_stops_the_notebook_in_its_first_cells(tmp_path):
    assert_bad_parameter_stops_early(STUDY, {"EPSILONS": [-1]}, tmp_path)


# --- issue 18: the tuned recipe, its privacy cost, and a fair threshold --------------------


def test_the_search_is_drawn_reproducibly_from_the_grid_for_each_epsilon():
    params = smoke_params(dp_bias.STUDY, TUNING_TRIALS=4.0)
    first = {e: dp_bias.trial_settings(params, e) for e in (1.0, 8.0)}
    assert first == {e: dp_bias.trial_settings(params, e) for e in (1.0, 8.0)}
    for settings in first.values():
        assert len(settings) >= 1
        for s in settings:
            for name, value in s.items():
                assert value in params.tuning_grid[name]
    other = smoke_params(dp_bias.STUDY, TUNING_TRIALS=4.0, TUNING_SEED=7)
    assert [dp_bias.trial_settings(other, e) for e in (1.0, 8.0)] != list(first.values())
    # the number of trials is geometric with the stated mean (over many epsilons)
    counts = [len(dp_bias.trial_settings(params, e / 100)) for e in range(1, 2001)]
    assert np.mean(counts) == pytest.approx(4.0, rel=0.1) and min(counts) == 1


def test_the_final_runs_follow_the_best_trial_once_every_trial_is_done():
    params = smoke_params(dp_bias.STUDY, SEEDS=[0, 1], TUNING_TRIALS=3.0, DIST_GROUP=None)
    before = dp_bias.plan_runs(params)
    trials = [r for r in before if r["experiment"] == dp_bias.TUNING]
    assert trials and not any(r["run"].startswith("tuned/") for r in before)
    done = {t["run"]: {**t, "val_auc": 0.6 + 0.01 * i} for i, t in enumerate(trials)}
    after = dp_bias.plan_runs(params, done)
    finals = [r for r in after if r["run"].startswith("tuned/")]
    assert [f["seed"] for f in finals] == [1, 1]  # seed 0 is the tuning seed: its trial
    for eps in params.epsilons:
        mine = [done[t["run"]] for t in trials if t["epsilon"] == eps]
        best = max(mine, key=lambda t: t["val_auc"])
        final = next(f for f in finals if f["epsilon"] == eps)
        assert final["hyper"] == best["hyper"] and final["recipe"] == dp_bias.TUNED_RECIPE
        config = dp_bias.train_config(params, eps, 1, final["hyper"])
        assert config.learning_rate == best["hyper"]["LEARNING_RATE"]
        assert config.validation_metric == "auc"


def test_the_fair_threshold_matches_the_validation_positive_rate():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.55, 0.52, 0.51, 0.3])
    labels = np.array([1, 0, 1, 0, 0, 0, 0, 0])  # 2 of 8 positive
    cut = dp_bias.val_rate_threshold(scores, labels)
    assert cut == 0.8 and (scores >= cut).sum() == 2
    # a model with every score above 0.5: at 0.5 it calls all positive, at the fair one not
    assert (scores >= 0.5).sum() == 7


@pytest.mark.notebook
@pytest.mark.slow
def test_smoke_run_has_both_recipes_the_tuning_cost_and_the_fair_threshold(smoke_run):
    results = pd.read_csv(smoke_run / "results.csv")
    sweep = results[results.experiment == dp_bias.SWEEP]
    assert set(sweep.recipe) == {"shared", "tuned"}
    tuned = sweep[sweep.recipe == "tuned"]
    assert {"subgroup_auc", "bpsn_auc", "bnsp_auc"} <= set(tuned.metric)
    costs = tuned[tuned.metric.str.startswith("tuning_epsilon")]
    assert set(costs.metric) == {"tuning_epsilon_composed", "tuning_epsilon_search"}
    assert costs.accountant.str.contains("upper bound").all()
    own = tuned[tuned.metric == "epsilon"].set_index("run").value
    # the procedure costs at least the model's own run, by the same accountant (PLD)
    privacy = pd.read_csv(smoke_run / "privacy.csv").set_index("run")
    assert set(own.index) <= set(privacy.index)
    for row in costs[costs.metric == "tuning_epsilon_composed"].itertuples():
        assert row.value >= privacy.epsilon_bound[row.run] - 1e-6
        assert row.accountant.startswith(privacy.bound_by[row.run].split(" ")[0])
    assert (results.metric == "parity_gap@val_rate").any()
    assert (results.metric == "threshold@val_rate").any()
    baseline = results[(results.experiment == "baseline") & (results.metric == "overall_auc")]
    assert 0.5 < baseline.value.iloc[0] <= 1
