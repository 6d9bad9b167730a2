"""Kubernetes' CEL quantity and list extensions, against the values Kubernetes documents."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.core.cel_k8s import CelError, Quantity, activation, evaluate


def cel(expression: str, **variables: Any) -> Any:
    return evaluate(expression, activation(variables))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1Gi", 2**30),
        ("1024Mi", 2**30),
        ("2Ki", 2048),
        ("500m", 0.5),
        ("1.5", 1.5),
        ("1e3", 1000),
        ("1E3", 1000),
        ("5e-3", 0.005),
        ("1k", 1000),
        ("1M", 10**6),
        ("100n", 1e-7),
        ("0.5Gi", 2**29),
        (".5", 0.5),
        ("5.", 5),
        ("-1", -1),
        ("+2", 2),
    ],
)
def test_quantity_values(text: str, value: float) -> None:
    assert float(Quantity.parse(text).value) == pytest.approx(value)
    assert float(cel(f"quantity('{text}').asApproximateFloat()")) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "abc", "1 Gi", "1gi", "1.2.3", "Gi", "1Gb", "--1", "1e", "0x10"])
def test_invalid_quantities_are_errors(text: str) -> None:
    assert not cel(f"isQuantity('{text}')")
    with pytest.raises(CelError, match="quantities must match"):
        cel(f"quantity('{text}')")


def test_comparisons_follow_kubernetes_docs() -> None:
    # From the Kubernetes CEL docs' quantity examples.
    assert cel("quantity('1Gi') == quantity('1024Mi')")
    assert cel("quantity('1Gi').compareTo(quantity('1024Mi')) == 0")
    assert cel("quantity('200M').compareTo(quantity('0.2G')) == 0")
    assert cel("quantity('50k').add(quantity('20k')) == quantity('70k')")
    assert cel("quantity('50k').add(20).isGreaterThan(quantity('50k'))")
    assert cel("quantity('50k').sub(quantity('20k')) == quantity('30k')")
    assert cel("quantity('50k').sub(20000).isInteger()")
    assert cel("quantity('1.5').isLessThan(quantity('2'))")
    assert cel("quantity('500m').compareTo(quantity('1')) == -1")
    assert cel("quantity('2').compareTo(quantity('1999m')) == 1")
    assert cel("quantity('-1').sign() == -1 && quantity('0').sign() == 0 && quantity('3m').sign() == 1")


def test_integers() -> None:
    assert cel("quantity('1e3').asInteger()") == 1000
    assert cel("quantity('2Ki').asInteger()") == 2048
    assert not cel("quantity('1.5').isInteger()")
    assert cel("quantity('9223372036854775807').isInteger()")
    assert not cel("quantity('9223372036854775808').isInteger()")  # beyond int64
    with pytest.raises(CelError, match="cannot convert"):
        cel("quantity('500m').asInteger()")


def test_list_sum() -> None:
    assert cel("[1, 2, 3].sum()") == 6
    assert float(cel("[0.5, 1.25].sum()")) == pytest.approx(1.75)
    assert cel("[].sum()") == 0
    assert cel(
        "object.map(q, quantity(q).asApproximateFloat()).sum() <= 4.0", object=["1", "2500m", "0.5"]
    )
    assert not cel(
        "object.map(q, quantity(q).asApproximateFloat()).sum() <= 4.0", object=["1", "2500m", "0.51"]
    )
    with pytest.raises(CelError):
        cel("[1, 2.0].sum()")  # cel-go has no mixed-type sum


def test_has_and_wrong_types() -> None:
    pod = {"spec": {"containers": [{"name": "a"}]}}
    assert cel("!has(object.spec.volumes)", object=pod)
    assert cel("object.spec.containers.all(c, !has(c.resources))", object=pod)
    assert cel("!has(object.spec.x) || object.spec.x.y == 1", object=pod)  # short-circuit
    with pytest.raises(CelError):
        cel("quantity(1)")
    with pytest.raises(CelError):
        cel("quantity('1').isGreaterThan(1)")
