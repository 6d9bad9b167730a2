"""Kubernetes' CEL extension functions for the local evaluator (celpy), and a rule runner.

The API server evaluates the admission policy with cel-go plus Kubernetes' libraries; `sandbox
lint` evaluates the same expressions with celpy, which has no Kubernetes extensions. The ones
the ACI rules use are implemented here with the semantics of k8s.io/apiserver's CEL libraries:

- quantity library (k8s >= 1.29): `quantity(s)`, `isQuantity(s)`, and on a quantity
  `isInteger()`, `asInteger()`, `asApproximateFloat()`, `sign()`, `add()`, `sub()`,
  `compareTo()`, `isGreaterThan()`, `isLessThan()`; `==` compares values ("1Gi" == "1024Mi");
- lists library (k8s >= 1.24): `sum()` over ints or doubles.

Values are exact (`Fraction`), as resource.Quantity is; only `asApproximateFloat` rounds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from typing import Any

import celpy
from celpy import celtypes

_INT64_MAX = 2**63 - 1
_INT64_MIN = -(2**63)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
# <signedNumber><suffix>, as in k8s.io/apimachinery/pkg/api/resource (quantity.go).
_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<binary>Ki|Mi|Gi|Ti|Pi|Ei)|[eE](?P<exponent>[+-]?[0-9]+)|(?P<decimal>[numkMGTPE]?))"
)


@dataclass(frozen=True)
class Quantity:
    """A parsed Kubernetes quantity; compares by value like resource.Quantity.Cmp."""

    text: str
    value: Fraction

    @classmethod
    def parse(cls, text: str) -> Quantity:
        match = _QUANTITY.fullmatch(text)
        if match is None:
            raise ValueError(f"quantities must match the regular expression: {text!r}")
        number = Fraction(match["number"])
        if match["binary"]:
            scale = Fraction(_BINARY[match["binary"]])
        elif match["exponent"] is not None:
            exponent = int(match["exponent"])
            if abs(exponent) > 1000:
                raise ValueError(f"quantity exponent out of range: {text!r}")
            scale = Fraction(10) ** exponent
        else:
            scale = _DECIMAL[match["decimal"]]
        return cls(text, number * scale)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Quantity):
            return NotImplemented
        return self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)


def _quantity(text: Any) -> Quantity:
    if not isinstance(text, str):
        raise TypeError(f"quantity() takes a string, got {type(text).__name__}")
    return Quantity.parse(str(text))


def _is_quantity(text: Any) -> celtypes.BoolType:
    if not isinstance(text, str):
        raise TypeError(f"isQuantity() takes a string, got {type(text).__name__}")
    return celtypes.BoolType(_QUANTITY.fullmatch(str(text)) is not None)


def _as_quantity(other: Any) -> Fraction:
    """Right-hand side of add/sub: a quantity or an int (k8s overloads both)."""
    if isinstance(other, Quantity):
        return other.value
    if isinstance(other, int) and not isinstance(other, bool):
        return Fraction(int(other))
    raise TypeError(f"expected a quantity or int, got {type(other).__name__}")


def _need(q: Any) -> Quantity:
    if not isinstance(q, Quantity):
        raise TypeError(f"expected a quantity, got {type(q).__name__}")
    return q


def _is_integer(q: Any) -> celtypes.BoolType:
    value = _need(q).value
    return celtypes.BoolType(value.denominator == 1 and _INT64_MIN <= value <= _INT64_MAX)


def _as_integer(q: Any) -> celtypes.IntType:
    if not _is_integer(q):
        raise ValueError(f"cannot convert value to integer: {_need(q).text}")
    return celtypes.IntType(int(_need(q).value))


def _as_approximate_float(q: Any) -> celtypes.DoubleType:
    return celtypes.DoubleType(float(_need(q).value))


def _sign(q: Any) -> celtypes.IntType:
    value = _need(q).value
    return celtypes.IntType((value > 0) - (value < 0))


def _add(q: Any, other: Any) -> Quantity:
    value = _need(q).value + _as_quantity(other)
    return Quantity(str(value), value)


def _sub(q: Any, other: Any) -> Quantity:
    value = _need(q).value - _as_quantity(other)
    return Quantity(str(value), value)


def _compare_to(q: Any, other: Any) -> celtypes.IntType:
    a, b = _need(q).value, _need(other).value
    return celtypes.IntType((a > b) - (a < b))


def _is_greater_than(q: Any, other: Any) -> celtypes.BoolType:
    return celtypes.BoolType(_compare_to(q, other) > 0)


def _is_less_than(q: Any, other: Any) -> celtypes.BoolType:
    return celtypes.BoolType(_compare_to(q, other) < 0)


def _sum(items: Any) -> celtypes.Value:
    """lists library `sum()`: ints sum to int, doubles to double; no mixing, as in cel-go."""
    if not isinstance(items, list):
        raise TypeError(f"sum() applies to a list, got {type(items).__name__}")
    if not items:
        return celtypes.IntType(0)
    if all(isinstance(i, celtypes.DoubleType) for i in items):
        return celtypes.DoubleType(sum(float(i) for i in items))
    if all(isinstance(i, celtypes.IntType) for i in items):
        return celtypes.IntType(sum(int(i) for i in items))
    raise TypeError("sum() needs a list of only ints or only doubles")


FUNCTIONS: Mapping[str, Callable[..., Any]] = {
    "quantity": _quantity,
    "isQuantity": _is_quantity,
    "isInteger": _is_integer,
    "asInteger": _as_integer,
    "asApproximateFloat": _as_approximate_float,
    "sign": _sign,
    "add": _add,
    "sub": _sub,
    "compareTo": _compare_to,
    "isGreaterThan": _is_greater_than,
    "isLessThan": _is_less_than,
    "sum": _sum,
}


class CelError(Exception):
    """An expression failed to compile or to evaluate (the API server would reject the pod)."""


@cache
def _program(expression: str) -> celpy.Runner:
    env = celpy.Environment()
    try:
        ast = env.compile(expression)
    except celpy.CELParseError as exc:
        raise CelError(f"cannot compile CEL: {exc}") from exc
    return env.program(ast, functions=dict(FUNCTIONS))


def activation(variables: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-like values (e.g. {"object": pod_dict}) as CEL values; build once, evaluate often."""
    return {name: celpy.json_to_cel(value) for name, value in variables.items()}


def evaluate(expression: str, variables: Mapping[str, Any]) -> Any:
    """Evaluate `expression` over an `activation(...)`; a failure raises CelError."""
    program = _program(expression)
    try:
        return program.evaluate(dict(variables))
    except celpy.CELEvalError as exc:
        cause = exc.__cause__
        detail = f"{exc.args[0]}: {cause}" if cause is not None else str(exc.args[0] if exc.args else exc)
        raise CelError(detail) from exc
