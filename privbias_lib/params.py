"""Study parameters: one pydantic model per study, checked by one function, :func:`validate`.

A study's parameters are the notebook's UPPER_CASE names. The model holds their types,
ranges and descriptions and *no defaults*: the defaults are the notebook's ``parameters``
cell (what a reader sees), and profiles are sparse overrides of it
(:meth:`privbias_lib.study.Study.resolve`). Every entry point — the runner before a kernel
starts, a sweep for each of its points, the notebook right after papermill injected its
values — calls :func:`validate`, which turns pydantic's errors into one
:class:`ParameterError` naming each bad parameter and what it should be.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

__all__ = [
    "Device",
    "Distinct",
    "Listing",
    "ParameterError",
    "PositiveNumber",
    "Seed",
    "Seeds",
    "StudyParams",
    "bad",
    "load_yaml",
    "parameter_table",
    "validate",
]


@functools.cache
def _yaml_loader():
    """PyYAML's safe loader that also reads ``1e-4`` as a float, as YAML 1.2 and every reader
    do (YAML 1.1 wants a dot, ``1.0e-4``, and would keep ``1e-4`` a string)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    exponent = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", exponent, list("-+.0123456789"))
    return Loader


def load_yaml(text: str) -> Any:
    """Parse YAML safely, with ``1e-4`` a float at any depth (profiles, ``-p``, ``-f``)."""
    import yaml

    return yaml.load(text, Loader=_yaml_loader())  # a SafeLoader subclass: safe


class ParameterError(ValueError):
    """A study parameter has a bad value; the message names the parameter."""


def bad(name: str, value: Any, expected: str) -> ParameterError:
    """The error for parameter ``name``: ``parameter NAME = value is invalid: expected ...``."""
    return ParameterError(f"parameter {name} = {value!r} is invalid: expected {expected}")


def _distinct(values: Any) -> Any:
    """No entry twice, by value (``1`` and ``1.0`` are the same epsilon); checked on the
    values as given, so the message shows what the user wrote."""
    if isinstance(values, list):
        for i, v in enumerate(values):
            if any(v == w and type(v) is not bool for w in values[:i]):
                raise ValueError(f"entry {v!r} appears twice: expected distinct entries")
    return values


Distinct = BeforeValidator(_distinct)
Item = TypeVar("Item")
Listing = Annotated[list[Item], Field(min_length=1), Distinct]  # e.g. Listing[PositiveNumber]
PositiveNumber = Annotated[float, Field(gt=0)]
Seed = Annotated[int, Field(ge=0)]
Seeds = Annotated[list[Seed], Field(min_length=1), Distinct]
Device = Literal["cpu", "cuda"] | None

T = TypeVar("T", bound="StudyParams")


class StudyParams(BaseModel):
    """Base of every study's parameters: strict types (``8.0`` is not an integer, ``"8"``
    not a number, ``True`` not a count), finite numbers only, no unknown names, frozen."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        alias_generator=str.upper,
        allow_inf_nan=False,
    )

    output_dir: str = Field(
        min_length=1, description="folder the notebook writes into (the runner sets it)"
    )

    @classmethod
    def names(cls) -> list[str]:
        """The notebook's parameter names, in declaration order."""
        return [f.alias or n.upper() for n, f in cls.model_fields.items()]

    def to_dict(self) -> dict[str, Any]:
        """``{NAME: value}`` of every parameter."""
        return self.model_dump(by_alias=True)


def validate(params_type: type[T], values: Mapping[str, Any]) -> T:
    """``values`` (``{NAME: value}``) checked by ``params_type``; raises
    :class:`ParameterError` listing every unknown, missing and invalid parameter."""
    try:
        return params_type.model_validate(dict(values))
    except ValidationError as e:
        raise ParameterError(describe(e, params_type, values)) from None


def describe(error: ValidationError, params_type: type[StudyParams], values: Mapping) -> str:
    """pydantic's errors as sentences that name the parameter, its value and the rule."""
    unknown, missing, problems = [], [], {}
    for err in error.errors():
        loc, kind = err["loc"], err["type"]
        if kind == "extra_forbidden":
            unknown.append(str(loc[0]))
        elif kind == "missing":
            missing.append(str(loc[0]))
        elif not loc:  # a check across parameters: its message names them
            cause = (err.get("ctx") or {}).get("error")
            problems.setdefault(None, []).append(str(cause) if cause else err["msg"])
        else:
            name = str(loc[0])
            where = _where(loc[1:])
            problems.setdefault(name, []).append(where + _rule(err))
    parts = []
    if unknown:
        known = ", ".join(n for n in params_type.names() if n != "OUTPUT_DIR")
        parts.append(f"unknown parameter(s) {sorted(unknown)}; known: {known}")
    if missing:
        parts.append(f"missing parameter(s) {sorted(missing)}")
    for name, rules in problems.items():
        if name is None:
            parts.extend(rules)
        else:
            shown = "; ".join(dict.fromkeys(rules))
            parts.append(f"parameter {name} = {values.get(name)!r} is invalid: {shown}")
    return "; ".join(parts)


def _where(path: tuple) -> str:
    """``(2,)`` -> "entry 2: ", ``('full',)`` -> "'full': "; union tags are dropped."""
    shown = [p for p in path if isinstance(p, int) or not _is_union_tag(p)]
    if not shown:
        return ""
    return ", ".join(f"entry {p}" if isinstance(p, int) else repr(p) for p in shown) + ": "


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, str) and (
        part in {"int", "float", "str", "bool", "list", "dict", "none"}
        or part.startswith(("list[", "dict[", "literal[", "function-after["))
    )


def _rule(err: dict) -> str:
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, ValueError):
        return str(cause)
    msg = err["msg"]
    return msg[0].lower() + msg[1:]


# ------------------------------------------------------------------------ documentation


def _type_text(schema: dict, defs: dict) -> str:
    """A JSON-schema type in words: "integer >= 1", "list of number > 0", "one of ..."."""
    if "$ref" in schema:
        return _type_text(defs[schema["$ref"].split("/")[-1]], defs)
    if "anyOf" in schema:
        return " or ".join(_type_text(s, defs) for s in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    if "const" in schema:
        return repr(schema["const"])
    kind = schema.get("type", "any")
    if kind == "null":
        return "None"
    if kind == "array":
        text = "list of " + _type_text(schema.get("items", {}), defs)
        if schema.get("minItems"):
            text += f" (at least {schema['minItems']})"
        return text
    if kind == "object":
        values = schema.get("additionalProperties")
        return "mapping" + (f" to {_type_text(values, defs)}" if isinstance(values, dict) else "")
    bounds = [
        f"{op} {schema[key]:g}"
        for key, op in (
            ("minimum", ">="),
            ("exclusiveMinimum", ">"),
            ("maximum", "<="),
            ("exclusiveMaximum", "<"),
        )
        if key in schema and not (isinstance(schema[key], float) and math.isinf(schema[key]))
    ]
    return " ".join([{"number": "number", "integer": "integer"}.get(kind, kind), *bounds])


def parameter_table(params_type: type[StudyParams], columns: dict[str, dict]) -> pd.DataFrame:
    """One row per parameter (``OUTPUT_DIR`` left out): its type from the JSON schema, its
    description, and one column of values per entry of ``columns`` (e.g. the notebook's
    defaults and each profile's overrides; a profile that keeps the default shows "")."""
    schema = params_type.model_json_schema(by_alias=True)
    defs = schema.get("$defs", {})
    rows = []
    for name, prop in schema["properties"].items():
        if name == "OUTPUT_DIR":
            continue
        row = {"parameter": name, "type": _type_text(prop, defs)}
        for label, values in columns.items():
            row[label] = repr(values[name]) if name in values else ""
        row["description"] = prop.get("description", "")
        rows.append(row)
    return pd.DataFrame(rows)
