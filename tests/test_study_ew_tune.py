"""Study 2 (EW-Tune): parameters, EW-Tune's numbers reproduced by computation, the data,
and the notebook run end to end on the smoke profile with papermill."""

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

from privbias_lib.accounting import epsilon, noise_multiplier
from privbias_lib.params import ParameterError
from privbias_lib.studies import PROFILES, ew_tune

STUDY = ew_tune.STUDY


# --- parameters ------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_parses_and_validates(name):
    params = profile_params(STUDY, name)
    assert params.target_epsilon == 8.0


def test_the_paper_profile_is_the_papers_recipe():
    """EW-Tune (Behnia et al. 2022): roberta-base on GLUE, batch B = 2000, 20 epochs
    (T = 20 floor(N / B)), Adam lr 3e-4, clipping 10, seeds 0/3/22, epsilon 8, delta 1e-5
    and 1e-6, noise from Edgeworth, PRV and RDP, at the four tasks' (q, T). Where the
    profile deliberately differs (its comment says so): LoRA, rank 8 on query/value,
    stands in for EW-Tune's rank-1 RGP, and the optimiser is AdamW without weight decay
    (Adam). The profile overrides
    the notebook's defaults sparsely, so every value is checked as resolved: a change of
    the defaults must not change the paper's recipe unnoticed."""
    p = profile_params(STUDY, "paper")
    # Part A: EW-Tune's four task settings, its deltas and its target
    assert list(p.tasks) == ["mnli", "qnli", "qqp", "sst2"] and set(p.tasks) == set(
        ew_tune.TASK_SIZES
    )
    assert p.deltas == [1e-5, 1e-6] and p.target_epsilon == 8.0
    assert set(ew_tune.CALIBRATED) <= set(p.curve_methods)
    # Part B: the training recipe
    assert (p.dataset, p.glue_task, p.data_source) == ("glue", "sst2", None)
    assert (p.max_train_examples, p.max_eval_examples) == (None, None)  # q = B / N of the task
    assert (p.model, p.trainable, p.device) == ("roberta-base", "lora", "cuda")
    assert (p.lora_rank, p.lora_targets) == (8, ["query", "value"])  # stands in for RGP
    assert (p.batch_size, p.epochs, p.learning_rate, p.max_grad_norm) == (2000, 20, 3e-4, 10.0)
    assert (p.batch_size, p.epochs) == (ew_tune.EW_BATCH, ew_tune.EW_EPOCHS)
    assert p.non_private_learning_rate is None  # every run at EW-Tune's lr
    assert p.seeds == [0, 3, 22] and p.train_epsilon == 8.0 and p.train_delta in p.deltas
    assert p.train_delta == 1e-5
    assert p.train_accountants == list(ew_tune.CALIBRATED) and p.include_non_private
    # the recipe as the training receives it: Part B runs Part A's T for its task
    n = ew_tune.TASK_SIZES[p.glue_task]
    assert ew_tune.train_steps(p, n) == ew_tune.task_setting(p.glue_task)[1] == 20 * (n // 2000)
    for accountant in ew_tune.CALIBRATED:
        config = ew_tune.train_config(p, accountant, 3, n)
        assert (config.learning_rate, config.batch_size, config.epochs) == (3e-4, 2000, 20)
        assert config.scheduler == "constant" and config.optimizer == "adamw"
        assert config.weight_decay == 0.0  # AdamW without weight decay: EW-Tune's Adam
        assert config.privacy.accountant == accountant and config.privacy.poisson_sampling
        assert (config.privacy.target_epsilon, config.privacy.delta) == (8.0, 1e-5)
        assert config.privacy.max_grad_norm == 10.0
        assert config.trainable.rank == 8 and config.trainable.target_modules == ("query", "value")
    assert ew_tune.train_config(p, None, 3, n).learning_rate == 3e-4
    runs = ew_tune.plan_runs(p)
    assert len(runs) == 3 * 4 and {r["seed"] for r in runs} == {0, 3, 22}


def test_the_notebooks_one_literal_parameters_cell_is_the_only_source_of_defaults():
    nb = nbformat.read(STUDY.notebook, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    defaults = STUDY.defaults()  # every value a literal (parsed with ast.literal_eval)
    assert list(defaults) == ew_tune.EWTuneParams.names()  # every parameter, in order
    STUDY.validate(defaults)  # the defaults are valid as they stand
    assert STUDY.profile("cpu") == {}  # the cpu profile is the parameters cell itself
    assert STUDY.resolve("cpu") == {k: v for k, v in defaults.items() if k != "OUTPUT_DIR"}
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("profile", [p for p in PROFILES if p != "cpu"])
def test_a_profile_holds_only_values_that_differ_from_the_defaults(profile):
    defaults = STUDY.defaults()
    overrides = STUDY.profile(profile)
    assert overrides and set(overrides) <= set(defaults) - {"OUTPUT_DIR"}
    repeated = sorted(k for k, v in overrides.items() if defaults[k] == v)
    assert not repeated, f"{profile} repeats the notebook's defaults of {repeated}"


@pytest.mark.parametrize(
    "changes, rule",
    [
        ({"TASKS": ["cola"]}, "entry 0: input should be 'mnli', 'qnli', 'qqp' or 'sst2'"),
        ({"CURVE_TASKS": ["sst2", "sst2"]}, "appears twice"),
        ({"DELTAS": [0]}, "greater than 0"),
        ({"TARGET_EPSILON": -1}, "greater than 0"),
        ({"TARGET_EPSILON": "eight"}, "valid number"),
        ({"CURVE_METHODS": ["edgeworth", "moments"]}, "entry 1: input should be"),
        ({"CURVE_SIGMAS": [0.1]}, "greater than or equal to 0.3"),
        ({"TRAINABLE": "all"}, "'top_layers' or 'lora'"),
        ({"TRAIN_ACCOUNTANTS": ["moments"]}, "entry 0: input should be 'edgeworth'"),
        ({"SEEDS": [0, 0]}, "appears twice"),
        ({"DATA_SOURCE": "nyu-mll/glue"}, "None for the offline RedditBias"),
        ({"BATCH_SIZE": "64"}, "valid integer"),
        ({"BATCH_SIZE": 512}, "at most MAX_TRAIN_EXAMPLES = 192"),
    ],
)
def test_bad_parameters_are_named(changes, rule):
    with pytest.raises(ParameterError) as err:
        smoke_params(STUDY, **changes)
    ((name, value),) = changes.items()
    assert f"parameter {name} = {value!r} is invalid" in str(err.value)
    assert rule in str(err.value)


def test_train_config_follows_the_parameters():
    from privbias_lib.training import LoRA, TopLayers

    cpu = profile_params(STUDY, "cpu")
    private = ew_tune.train_config(cpu, "edgeworth", seed=3, n_train=9169)
    assert private.learning_rate == cpu.learning_rate and private.seed == 3
    assert private.privacy.accountant == "edgeworth" and private.privacy.bound_accountant == "pld"
    assert private.privacy.target_epsilon == cpu.train_epsilon and private.privacy.poisson_sampling
    assert isinstance(private.trainable, TopLayers) and private.trainable.cache_frozen
    assert private.max_steps == cpu.epochs * (9169 // cpu.batch_size)  # EW-Tune's T
    plain = ew_tune.train_config(cpu, None, seed=3, n_train=9169)
    assert plain.privacy is None and plain.learning_rate == cpu.non_private_learning_rate
    smoke = smoke_params(STUDY)
    assert ew_tune.train_config(smoke, None, 0, 192).learning_rate == smoke.learning_rate
    lora = ew_tune.train_config(smoke, "prv", 0, 192).trainable
    assert isinstance(lora, LoRA) and lora.rank == smoke.lora_rank
    assert lora.target_modules == tuple(smoke.lora_targets)
    with pytest.raises(ParameterError, match="BATCH_SIZE"):
        ew_tune.train_steps(cpu, cpu.batch_size - 1)
    runs = ew_tune.plan_runs(cpu)
    assert len(runs) == 4 * len(cpu.seeds) and runs[0]["accountant"] is None


def test_too_many_top_layers_fail_before_any_computation():
    deep = profile_params(STUDY, "cpu", TOP_LAYERS=7)  # MiniLM has 6
    with pytest.raises(ParameterError, match=r"TOP_LAYERS = 7 .* at most 6"):
        STUDY.check(deep)
    STUDY.check(profile_params(STUDY, "cpu", TOP_LAYERS=6))
    STUDY.check(smoke_params(STUDY, TOP_LAYERS=7))  # unused by LoRA


# --- EW-Tune's numbers, reproduced ------------------------------------------------------------


def test_task_settings_are_ew_tunes():
    q, steps = ew_tune.task_setting("sst2")
    assert q == pytest.approx(2000 / 67_349) and steps == 20 * 33
    q, steps = ew_tune.task_setting("mnli")
    assert q == pytest.approx(0.005093, abs=1e-6) and steps == 3920
    with pytest.raises(ValueError, match="cola"):
        ew_tune.task_setting("cola")


def test_paper_table_and_its_headline_noise_reduction():
    paper = ew_tune.paper_table().set_index(["task", "delta", "method"])
    assert len(paper) == 7 * 3
    assert paper.loc[("mnli", 1e-6, "prv"), "sigma"] == 0.607
    assert paper.loc[("sst2", 1e-5, "rdp"), "accuracy"] == 91.61
    # the paper's "up to 5.6% less noise": MNLI, delta 1e-6, against PRV
    cut = ew_tune.noise_reduction(0.573, 0.607)
    assert cut == pytest.approx(100 * 0.034 / 0.607) and round(cut, 1) == 5.6
    cuts = [
        ew_tune.noise_reduction(
            paper.loc[(t, d, "edgeworth"), "sigma"], paper.loc[(t, d, "prv"), "sigma"]
        )
        for t, d in {(t, d) for t, d, _ in paper.index}
    ]
    assert max(cuts) == pytest.approx(cut)


def test_paper_gains_are_read_from_its_logs():
    gains = ew_tune.paper_gains()
    assert gains.loc[("mnli", 1e-6), "edgeworth_minus_rdp"] == pytest.approx(80.76 - 80.33)
    assert gains.max().max() == pytest.approx(0.43)  # the largest logged gain
    behind = (gains < 0).any(axis=1)
    assert behind.sum() == 4  # Edgeworth's model behind a baseline in 4 of 7 settings


def test_our_edgeworth_sigma_reproduces_ew_tunes_logs():
    """Order-1 Edgeworth calibration at each of EW-Tune's seven settings gives the sigma
    its logs report (they round to 3-4 digits)."""
    paper = ew_tune.paper_table()
    for r in paper[paper.method == "edgeworth"].itertuples():
        q, steps = ew_tune.task_setting(r.task)
        ours = noise_multiplier(8.0, q, steps, r.delta, "edgeworth")
        assert ours == pytest.approx(r.sigma, abs=0.0015), (r.task, r.delta)


def test_pld_audit_of_ew_tunes_mnli_noise():
    """The paper note: at q = 0.005093, T = 3920, sigma = 0.557, delta = 1e-5 Edgeworth
    says 8.0 but PLD says about 9.14."""
    q, steps = ew_tune.task_setting("mnli")
    assert epsilon(q, 0.557, steps, 1e-5, "edgeworth") == pytest.approx(8.0, abs=0.01)
    assert epsilon(q, 0.557, steps, 1e-5, "pld") == pytest.approx(9.14, abs=0.05)


def test_sigma_table_recomputes_the_reductions_from_its_sigmas():
    calibration = pd.DataFrame(
        [
            ("sst2", 1e-5, m, s, ps)
            for m, s, ps in [("edgeworth", 0.8, 0.78), ("prv", 0.84, 0.82), ("rdp", 0.9, 0.88)]
        ],
        columns=["task", "delta", "method", "sigma", "paper_sigma"],
    )
    row = ew_tune.sigma_table(calibration).iloc[0]
    assert row.reduction_vs_prv_pct == pytest.approx(100 * 0.04 / 0.84)
    assert row.reduction_vs_rdp_pct == pytest.approx(100 * 0.1 / 0.9)
    assert row.paper_reduction_vs_prv_pct == pytest.approx(100 * 0.04 / 0.82)
    shown = ew_tune.sigma_overview(ew_tune.sigma_table(calibration)).iloc[0]
    assert (
        shown[("\N{GREEK SMALL LETTER SIGMA} Edgeworth", "ours")] == 0.8
        and shown[("\N{GREEK SMALL LETTER SIGMA} RDP", "paper")] == 0.88
    )
    assert shown[("less noise than PRV (%)", "paper")] == row.paper_reduction_vs_prv_pct
    assert len(shown) == 2 * 5  # every quantity once for ours and once for the paper


# --- data --------------------------------------------------------------------------------


def test_redditbias_training_data_has_each_comment_once():
    data = ew_tune.load_data(profile_params(STUDY, "cpu"))
    assert data.text.is_unique  # no comment in both splits
    assert set(data.split) == {"train", "validation"}
    share = (data.split == "validation").mean()
    assert share == pytest.approx(0.2, abs=0.005)
    rates = data.groupby("split").label.mean()
    assert abs(rates["train"] - rates["validation"]) < 0.01  # stratified by label


def write_glue_repo(root: Path, task: str, splits: dict[str, pd.DataFrame]) -> Path:
    """A local copy of nyu-mll/glue's layout: parquet files and a README with configs."""
    (root / task).mkdir(parents=True, exist_ok=True)
    lines = ["---", "configs:", f"- config_name: {task}", "  data_files:"]
    for split, frame in splits.items():
        frame.to_parquet(root / task / f"{split}-00000-of-00001.parquet")
        lines += [f"  - split: {split}", f"    path: {task}/{split}-*"]
    (root / "README.md").write_text("\n".join([*lines, "---", ""]))
    return root


def qnli_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    question = [f"where is item {i}?" for i in range(n)]
    sentence = [
        f"item {i} is in the {'box' if y == 0 else 'garden, far away'}."
        for i, y in enumerate(label)
    ]
    return pd.DataFrame(
        {"question": question, "sentence": sentence, "label": label, "idx": range(n)}
    )


@pytest.mark.slow
def test_glue_pairs_train_through_the_hub_code_path(tmp_path):
    """A QNLI-format local repository goes through datasets.load_dataset, as the hub id
    would, and a short run trains on (question, sentence) pairs."""
    repo = write_glue_repo(
        tmp_path / "glue", "qnli", {"train": qnli_frame(96, 0), "validation": qnli_frame(48, 1)}
    )
    params = smoke_params(
        STUDY, DATASET="glue", GLUE_TASK="qnli", DATA_SOURCE=str(repo),
        TRAINABLE="top_layers", MAX_TRAIN_EXAMPLES=None, MAX_EVAL_EXAMPLES=None,
        BATCH_SIZE=16, MAX_LENGTH=24,
    )  # fmt: skip
    data = ew_tune.load_data(params)
    assert data.text_pair.notna().all() and len(data) == 144
    record = ew_tune.train_and_evaluate(
        params, {"run": "prv/seed=0", "accountant": "prv", "seed": 0}, data
    )
    assert 0 <= record["val_accuracy"] <= 1
    assert (
        record["privacy"]["accountant"] == "prv" and record["privacy"]["bound_accountant"] == "pld"
    )
    other = data.assign(text_pair=data.text_pair + " (changed)")
    assert ew_tune.data_fingerprint(other) != ew_tune.data_fingerprint(data)
    assert STUDY.data_fingerprint(params, other) != STUDY.data_fingerprint(params, data)
    mnli = smoke_params(STUDY, DATASET="glue", GLUE_TASK="mnli")
    assert mnli.num_labels == 3


# --- the notebook, end to end ----------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    return run_smoke(STUDY, tmp_path_factory)


@pytest.mark.notebook
@pytest.mark.slow
def test_smoke_sigma_ordering_and_reductions(smoke_run):
    params = STUDY.resolve("smoke")
    sigmas = pd.read_csv(smoke_run / "sigma_table.csv")
    assert set(sigmas.task) == set(params["TASKS"])
    results = pd.read_csv(smoke_run / "results.csv", keep_default_na=False, na_values=[""])
    cal = results[results.part == "calibration"]
    for r in sigmas.itertuples():
        assert r.sigma_edgeworth < r.sigma_prv < r.sigma_rdp, r.task
        # the reduction, recomputed from the sigmas results.csv holds for this setting
        here = cal[cal.setting == f"{r.task} delta={r.delta}"].set_index("method").value
        assert r.reduction_vs_prv_pct == pytest.approx(
            100 * (here["prv"] - here["edgeworth"]) / here["prv"]
        )
        assert here["edgeworth"] == pytest.approx(
            noise_multiplier(8.0, *ew_tune.task_setting(r.task), r.delta, "edgeworth")
        )
    assert len(cal) == 3 * len(params["TASKS"]) * len(params["DELTAS"])
    assert set(cal.accountant) == {"edgeworth (estimate)", "prv (upper bound)", "rdp (upper bound)"}


@pytest.mark.notebook
@pytest.mark.slow
def test_smoke_audit_shows_edgeworth_below_pld(smoke_run):
    audit = pd.read_csv(smoke_run / "audit.csv")
    params = STUDY.resolve("smoke")
    settings = len(params["TASKS"]) * len(params["DELTAS"])
    ours = audit[(audit.source == "ours") & (audit.method == "edgeworth")]
    assert len(ours) == settings
    assert (ours.epsilon_edgeworth.round(3) <= 8.0).all()
    assert (ours.epsilon_pld > 8.05).all()  # the estimate under-counts at these settings
    bounds = audit[(audit.source == "ours") & audit.method.isin(["prv", "rdp"])]
    assert len(bounds) == 2 * settings
    assert (bounds.epsilon_pld <= 8.0 * 1.001).all()  # rigorous calibrations hold
    # EW-Tune's own sigmas are audited too (both smoke tasks have them at delta 1e-5)
    assert len(audit[audit.source == "paper"]) == 3 * settings


@pytest.mark.notebook
@pytest.mark.slow
def test_smoke_every_trained_model_has_a_pld_epsilon(smoke_run):
    params = STUDY.resolve("smoke")
    results = pd.read_csv(smoke_run / "results.csv", keep_default_na=False, na_values=[""])
    train = results[results.part == "training"]
    private = train[train.method != "none"]
    assert set(private.method) == set(params["TRAIN_ACCOUNTANTS"])
    bound = private[private.metric == "epsilon_bound"]
    assert len(bound) == len(params["TRAIN_ACCOUNTANTS"]) * len(params["SEEDS"])
    assert (bound.accountant == "pld (upper bound)").all() and bound.value.gt(0).all()
    acc = train[train.metric == "val_accuracy"]
    assert len(acc) == (len(params["TRAIN_ACCOUNTANTS"]) + 1) * len(params["SEEDS"])
    assert acc.value.between(0, 1).all()
    for name in ["epsilon_curves", "finetune_audit", "accuracy"]:
        assert (smoke_run / f"{name}.png").stat().st_size > 10_000
        assert len(pd.read_csv(smoke_run / f"{name}.data.csv")) > 0  # the frame it shows


@pytest.mark.notebook
@pytest.mark.slow
def test_smoke_manifest_is_complete(smoke_run):
    manifest = json.loads((smoke_run / "manifest.json").read_text())
    params = STUDY.resolve("smoke")
    assert {k: v for k, v in manifest["parameters"].items() if k != "OUTPUT_DIR"} == params
    assert manifest["seeds"] == params["SEEDS"]
    assert len(manifest["models"][0]["sha256"]) == 64 and len(manifest["data"]["sha256"]) == 64
    assert manifest["accountants"]["edgeworth"] == "estimate"
    expected = {"curves", "calibration", "audit", "finetune_audit", "data", "runs", "results"}
    assert expected <= set(manifest["timings_s"])
    assert "results.csv" in manifest["files"]


@pytest.mark.notebook
def test_a_bad_parameter_stops_the_notebook_in_its_first_cells(tmp_path):
    assert_bad_parameter_stops_early(STUDY, {"TRAIN_ACCOUNTANTS": ["moments"]}, tmp_path)


@pytest.mark.notebook
@pytest.mark.slow
def test_smoke_notebook_output_is_not_flooded_by_progress_bars(smoke_run):
    executed = nbformat.read(smoke_run / f"{STUDY.key}.ipynb", as_version=4)
    text = "".join(
        o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs
    )
    assert "Loading weights" not in text
    runs = len(ew_tune.plan_runs(smoke_params(STUDY)))
    assert f"study 2 runs: {runs} planned, 0 already done, {runs} to compute" in text  # all new


def test_log_axis_ticks_skip_steps_whose_labels_would_overlap():
    from privbias_lib.studies.ew_tune.figures import _spaced

    assert _spaced([2000, 50, 1040, 100, 1000, 660]) == [50, 100, 660, 1000, 2000]
    assert _spaced([100]) == [100]
