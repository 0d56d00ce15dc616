"""``privbias accountant``: bad values refused up front, progress on stderr, a quick PLD."""

from __future__ import annotations

import argparse

import pytest

from privbias_lib import cli

GOOD = {"--q": "0.01", "--steps": "1000", "--delta": "1e-5"}


def argv(**options: str) -> list[str]:
    values = {**GOOD, "--sigma": "1.0"}
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if flag == "--target-epsilon":
            values.pop("--sigma")
        values[flag] = value
    args = ["accountant"]
    for flag, value in values.items():
        args += [flag, *value.split()]
    return args


def run(args: list[str]) -> int:
    """The accountant command as ``cli.main`` runs it (without main's other imports)."""
    parsed = cli.build_parser().parse_args(args)
    return parsed.func(parsed)


@pytest.mark.parametrize(
    ("options", "option", "allowed"),
    [
        ({"target_epsilon": "nan"}, "--target-epsilon", "a finite value > 0"),
        ({"target_epsilon": "-1"}, "--target-epsilon", "a finite value > 0"),
        ({"target_epsilon": "0"}, "--target-epsilon", "a finite value > 0"),
        ({"target_epsilon": "inf"}, "--target-epsilon", "a finite value > 0"),
        ({"sigma": "nan"}, "--sigma", "a finite noise multiplier > 0"),
        ({"sigma": "-0.5"}, "--sigma", "a finite noise multiplier > 0"),
        ({"q": "0"}, "--q", "0 < q <= 1"),
        ({"q": "1.5"}, "--q", "0 < q <= 1"),
        ({"q": "nan"}, "--q", "0 < q <= 1"),
        ({"delta": "0"}, "--delta", "0 < delta < 1"),
        ({"delta": "1"}, "--delta", "0 < delta < 1"),
        ({"steps": "0"}, "--steps", "an integer >= 1"),
        ({"steps": "2.5"}, "--steps", "an integer >= 1"),
        ({"steps": "ten"}, "--steps", "an integer >= 1"),
        ({"methods": "rdp nope"}, "--methods", "allowed one of edgeworth, edgeworth2, rdp"),
    ],
)
def test_bad_values_exit_2_naming_the_option_before_any_computation(
    options, option, allowed, capsys, monkeypatch
):
    def computed(args):
        raise AssertionError("the accountant ran on a bad value")

    monkeypatch.setattr(cli, "_cmd_accountant", computed)
    with pytest.raises(SystemExit) as e:
        run(argv(**options))
    assert e.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"argument {option}: " in error and allowed in error


def test_calibration_shows_progress_per_method_on_stderr_and_prints_a_table(capsys):
    methods = ["edgeworth", "rdp", "gdp"]
    assert run(argv(target_epsilon="2", methods=" ".join(methods))) == 0
    out, err = capsys.readouterr()
    progress = err.splitlines()
    assert len(progress) == len(methods)
    for i, (line, method) in enumerate(zip(progress, methods, strict=True), 1):
        assert line.startswith(f"calibrating {method} ({i}/{len(methods)})... ")
        assert "; pld audit... " in line and line.endswith(" s")
    assert "calibrating" not in out  # stdout carries the table only
    rows = {ln.split()[0]: ln.split() for ln in out.splitlines() if ln.strip()}
    assert rows["method"] == ["method", "sigma", "kind", "pld", "epsilon", "at", "sigma", "note"]
    assert rows["edgeworth"][1] == "0.97240" and rows["edgeworth"][2] == "estimate"
    assert float(rows["rdp"][-1]) <= 2.0  # an upper bound's sigma is private by PLD too


def test_epsilon_mode_shows_progress_per_method_on_stderr(capsys):
    assert run(argv(methods="edgeworth rdp")) == 0
    out, err = capsys.readouterr()
    assert [ln.split("...")[0] for ln in err.splitlines()] == [
        "epsilon by edgeworth (1/2)",
        "epsilon by rdp (2/2)",
    ]
    assert "1.8948" in next(ln for ln in out.splitlines() if ln.startswith("edgeworth"))


def test_pld_skips_dp_accountings_slow_sparse_self_composition(monkeypatch):
    """dp-accounting 0.6 computes ``size ** steps`` exactly before going dense: ~40 s at
    10^7 steps. The PLD is now made dense first, with identical numbers."""
    import dp_accounting
    from dp_accounting.pld import pld_pmf

    from privbias_lib.accounting import epsilon

    q, sigma, steps, delta = 0.01, 19.0, 100_000, 1e-5  # a sparse one-step PLD
    expected = dp_accounting.pld.PLDAccountant()
    expected.compose(
        dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps
        )
    )
    sparse_self_compose = pld_pmf.SparsePLDPmf.self_compose

    def guarded(self, num_times, *args, **kwargs):
        assert num_times < 11, f"sparse self_compose({num_times}) evaluates size ** {num_times}"
        return sparse_self_compose(self, num_times, *args, **kwargs)

    monkeypatch.setattr(pld_pmf.SparsePLDPmf, "self_compose", guarded)
    assert epsilon(q, sigma, steps, delta, "pld") == expected.get_epsilon(delta)
    assert epsilon(q, sigma, 2, delta, "pld") > 0  # few steps: dp-accounting's sparse path


def test_a_sigma_stopped_by_an_accountant_failure_is_flagged_as_not_the_smallest(monkeypatch):
    from privbias_lib import accounting

    args = argparse.Namespace(q=0.01, steps=10_000_000, delta=1e-5, target_epsilon=8.0)

    def grid_too_large_below(q, sigma, steps, delta, method):
        if sigma < 29.7:
            raise accounting.AccountingError("PRV grid of 2.78e7 points exceeds the limit")
        return 4.75

    monkeypatch.setattr(accounting, "epsilon", grid_too_large_below)
    note = cli._not_smallest(args, "prv", 29.69)
    assert note.startswith("not the smallest: prv fails just below it") and "grid" in note
    monkeypatch.setattr(accounting, "epsilon", lambda *a: 9.0)  # computes fine below
    assert cli._not_smallest(args, "prv", 1.0) == ""
