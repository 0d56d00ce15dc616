"""Opacus finds the Edgeworth accountants by name once privbias_lib.accounting is imported."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from opacus import PrivacyEngine
from opacus.accountants import create_accountant
from opacus.accountants.utils import get_noise_multiplier

from privbias_lib.accounting import EdgeworthAccountant, epsilon, noise_multiplier

DELTA = 1e-5
TOLERANCE = 0.01  # Opacus's default epsilon_tolerance


def tiny_setup(seed: int = 0):
    """nn.Linear on 64 examples in batches of 8: sample rate 1/8 for Opacus."""
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 2)
    data = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    return model, torch.optim.SGD(model.parameters(), lr=0.1), loader


def train_steps(model, optim, loader, steps: int) -> None:
    for i, (x, y) in enumerate(loader):
        if i == steps:
            break
        optim.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optim.step()


@pytest.mark.parametrize(("name", "order"), [("edgeworth", 1), ("edgeworth2", 2)])
def test_create_accountant_by_name(name, order):
    acc = create_accountant(name)
    assert isinstance(acc, EdgeworthAccountant)
    assert acc.order == order and acc.mechanism() == name

    engine = PrivacyEngine(accountant=name)  # PrivacyEngine calls create_accountant
    assert isinstance(engine.accountant, EdgeworthAccountant)
    model, optim, loader = tiny_setup()
    model, optim, loader = engine.make_private(
        module=model,
        optimizer=optim,
        data_loader=loader,
        noise_multiplier=1.1,
        max_grad_norm=1.0,
    )
    train_steps(model, optim, loader, 5)
    assert engine.accountant.history == [(1.1, 1 / 8, 5)]
    assert engine.get_epsilon(DELTA) == pytest.approx(epsilon(1 / 8, 1.1, 5, DELTA, name))


def test_an_order_two_instance_reports_its_own_mechanism():
    """Opacus calibrates by ``accountant.mechanism()``: order 2 must not become order 1."""
    acc = EdgeworthAccountant(order=2)
    assert acc.mechanism() == "edgeworth2" and acc.order == 2
    assert EdgeworthAccountant().mechanism() == "edgeworth"
    acc.step(noise_multiplier=1.0, sample_rate=0.01)
    restored = create_accountant("edgeworth2")
    restored.load_state_dict(acc.state_dict())
    assert restored.history == acc.history


@pytest.mark.parametrize(
    ("q", "steps", "target"), [(1 / 8, 80, 4.0), (0.01, 1000, 1.0), (2000 / 392702, 3920, 8.0)]
)
def test_get_noise_multiplier_by_name_agrees_with_noise_multiplier(q, steps, target):
    sigma = get_noise_multiplier(
        target_epsilon=target,
        target_delta=DELTA,
        sample_rate=q,
        steps=steps,
        accountant="edgeworth",
    )
    ours = noise_multiplier(target, q, steps, DELTA, method="edgeworth")
    eps = epsilon(q, sigma, steps, DELTA, "edgeworth")
    assert target - TOLERANCE <= eps <= target  # Opacus returns the upper end of its bisection
    assert sigma >= ours * (1 - 1e-4)
    assert eps == pytest.approx(epsilon(q, ours, steps, DELTA, "edgeworth"), abs=TOLERANCE)


def test_make_private_with_epsilon_by_name_calibrates_like_noise_multiplier():
    model, optim, loader = tiny_setup()
    engine = PrivacyEngine(accountant="edgeworth")
    target, epochs = 4.0, 10
    model, optim, loader = engine.make_private_with_epsilon(
        module=model,
        optimizer=optim,
        data_loader=loader,
        target_epsilon=target,
        target_delta=DELTA,
        epochs=epochs,
        max_grad_norm=1.0,
    )
    q, steps = 1 / 8, int(epochs * 8)  # Opacus: sample_rate = 1 / len(loader)
    sigma = optim.noise_multiplier
    ours = noise_multiplier(target, q, steps, DELTA, method="edgeworth")
    assert sigma >= ours * (1 - 1e-4)
    eps = epsilon(q, sigma, steps, DELTA, "edgeworth")
    assert target - TOLERANCE <= eps <= target
    assert eps == pytest.approx(epsilon(q, ours, steps, DELTA, "edgeworth"), abs=TOLERANCE)
    train_steps(model, optim, loader, 3)
    assert engine.accountant.history == [(sigma, q, 3)]


def test_registration_is_idempotent():
    """Importing (and reloading) privbias_lib.accounting again keeps one working entry."""
    code = (
        "import importlib, warnings\n"
        "warnings.simplefilter('error')\n"
        "import privbias_lib.accounting as a\n"
        "import privbias_lib.accounting.edgeworth as e\n"
        "import privbias_lib.accounting\n"
        "importlib.reload(e); importlib.reload(a)\n"
        "from opacus.accountants import create_accountant\n"
        "assert type(create_accountant('edgeworth')) is a.EdgeworthAccountant\n"
        "assert create_accountant('edgeworth2').order == 2\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
