"""Shared fixtures. Real models load once per session (they are large)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def smollm2():
    from privbias_lib.models import load_model

    return load_model("smollm2-135m-instruct", "causal-lm", device="cpu")


@pytest.fixture(scope="session")
def winobias_all():
    from privbias_lib.data import load_winobias

    return load_winobias("all")
