"""Study parameters: strict types, finite numbers, distinct list entries, messages that
name the parameter, and the parameter tables generated from the JSON schema."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest
from pydantic import Field, model_validator

from privbias_lib.params import (
    Listing,
    ParameterError,
    PositiveNumber,
    Seeds,
    StudyParams,
    bad,
    parameter_table,
    validate,
)
from privbias_lib.studies import STUDIES


class Toy(StudyParams):
    epsilons: Listing[PositiveNumber] = Field(description="privacy levels")
    epochs: Annotated[int, Field(ge=1)] = Field(description="epochs")
    mode: Literal["a", "b"] = Field(description="a mode")
    cap: Annotated[int, Field(ge=100)] | None = Field(description="a cap")
    seeds: Seeds = Field(description="seeds")

    @model_validator(mode="after")
    def _consistent(self):
        if self.mode == "b" and self.cap is None:
            raise bad("CAP", self.cap, "a number when MODE is 'b'")
        return self


GOOD = {"OUTPUT_DIR": "x", "EPSILONS": [1, 8.0], "EPOCHS": 2, "MODE": "a", "CAP": None,
        "SEEDS": [0, 1]}  # fmt: skip


def test_good_values_pass_and_numbers_become_floats():
    p = validate(Toy, GOOD)
    assert p.epsilons == [1.0, 8.0] and p.epochs == 2 and p.to_dict()["EPSILONS"] == [1.0, 8.0]
    assert Toy.names() == ["OUTPUT_DIR", "EPSILONS", "EPOCHS", "MODE", "CAP", "SEEDS"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"EPOCHS": 0}, "EPOCHS = 0 is invalid: input should be greater than or equal to 1"),
        ({"EPOCHS": 2.0}, "parameter EPOCHS = 2.0 is invalid: input should be a valid integer"),
        ({"EPOCHS": True}, "parameter EPOCHS = True is invalid"),
        ({"EPOCHS": "2"}, "parameter EPOCHS = '2' is invalid"),
        ({"EPSILONS": [1, 1.0]}, "entry 1.0 appears twice: expected distinct entries"),
        ({"EPSILONS": [2, 2]}, "EPSILONS = [2, 2] is invalid: entry 2 appears twice"),
        ({"EPSILONS": [float("inf")]}, "[inf] is invalid: entry 0: input should be a finite"),
        ({"EPSILONS": [float("nan")]}, "EPSILONS = [nan] is invalid: entry 0"),
        ({"EPSILONS": []}, "EPSILONS = [] is invalid: list should have at least 1 item"),
        ({"EPSILONS": [1, -2]}, "[1, -2] is invalid: entry 1: input should be greater than 0"),
        ({"MODE": "c"}, "parameter MODE = 'c' is invalid: input should be 'a' or 'b'"),
        ({"CAP": 5}, "parameter CAP = 5 is invalid: input should be greater than or equal to 100"),
        ({"MODE": "b"}, "parameter CAP = None is invalid: expected a number when MODE is 'b'"),
        ({"SEEDS": [0, 0]}, "SEEDS = [0, 0] is invalid: entry 0 appears twice"),
    ],
)  # fmt: skip
def test_a_bad_value_is_refused_naming_the_parameter_value_and_rule(changes, message):
    with pytest.raises(ParameterError) as e:
        validate(Toy, {**GOOD, **changes})
    assert message in str(e.value)


def test_unknown_missing_and_several_bad_parameters_are_reported_together():
    values = {**GOOD, "EPOCH": 3, "EPOCHS": 0, "MODE": "z"}
    del values["SEEDS"]
    with pytest.raises(ParameterError) as e:
        validate(Toy, values)
    text = str(e.value)
    assert "unknown parameter(s) ['EPOCH']; known: EPSILONS, EPOCHS, MODE, CAP, SEEDS" in text
    assert "missing parameter(s) ['SEEDS']" in text
    assert "EPOCHS = 0" in text and "MODE = 'z'" in text


def test_params_are_frozen():
    p = validate(Toy, GOOD)
    with pytest.raises(ValueError, match="frozen"):
        p.epochs = 3


def test_the_parameter_table_is_generated_from_the_schema():
    table = parameter_table(Toy, {"default": GOOD, "smoke": {"EPOCHS": 1}})
    rows = table.set_index("parameter")
    assert "OUTPUT_DIR" not in rows.index
    assert rows.loc["EPOCHS", "type"] == "integer >= 1"
    assert rows.loc["EPSILONS", "type"] == "list of number > 0 (at least 1)"
    assert rows.loc["MODE", "type"] == "one of 'a', 'b'"
    assert rows.loc["CAP", "type"] == "integer >= 100 or None"
    assert rows.loc["EPOCHS", "smoke"] == "1" and rows.loc["MODE", "smoke"] == ""
    assert rows.loc["SEEDS", "description"] == "seeds"


@pytest.mark.parametrize("key", list(STUDIES))
def test_every_study_parameter_has_a_type_and_description_in_its_table(key):
    study = STUDIES[key]
    table = parameter_table(study.Params, {"default": study.defaults()})
    assert len(table) == len(study.Params.names()) - 1
    assert (table.type != "").all() and (table.description != "").all()
    assert (table["default"] != "").all()
