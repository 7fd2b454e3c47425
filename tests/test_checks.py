"""`tfllm.checks`: what each validator takes, and that its errors name the argument, the value and what was
expected, in one form."""

import pytest

from tfllm import checks


# Each integer check, the integers it takes and what it refuses: a bool is not an integer, and neither is a float or
# a string that looks like one.
INTEGER_CHECKS = [
    (checks.require_positive_int, (), "a positive integer", [1, 7], [True, "2", 2.0, 0, -1]),
    (checks.require_int_at_least, (2,), "an integer >= 2", [2, 9], [True, "2", 2.0, 1]),
    (checks.require_int_in_range, (1, 8), r"an integer in \[1, 8\]", [1, 8], [True, "2", 2.0, 0, 9]),
]


@pytest.mark.parametrize("check, arguments, expected, value", [
    (check, arguments, expected, value) for check, arguments, expected, _, refused in INTEGER_CHECKS
    for value in refused])
def test_integer_checks_refuse_what_is_no_integer_of_their_range(check, arguments, expected, value):
    with pytest.raises(ValueError, match=rf"^n={value!r} is invalid: expected {expected}\.$"):
        check("n", value, *arguments)


@pytest.mark.parametrize("check, arguments, value", [
    (check, arguments, value) for check, arguments, _, taken, _ in INTEGER_CHECKS for value in taken])
def test_integer_checks_return_the_integers_they_take(check, arguments, value):
    assert check("n", value, *arguments) == value


def test_integer_checks_end_their_reason_with_one_period():
    for check, arguments in ((checks.require_positive_int, ()), (checks.require_int_at_least, (2,)),
                             (checks.require_int_in_range, (1, 8))):
        with pytest.raises(ValueError, match=r"is invalid: expected .* \(a reason\)\.$"):
            check("n", -1, *arguments, " (a reason)")


@pytest.mark.parametrize("check, expected", [
    (checks.require_positive_number, "a number > 0"),
    (checks.require_probability, r"a probability in \(0, 1\]"),
])
@pytest.mark.parametrize("value", [True, "0.5", None, float("nan")], ids=["bool", "str", "none", "nan"])
def test_number_checks_refuse_a_bool_a_string_and_nan(check, expected, value):
    # A bool passed `0 < value <= 1` as the number 1, and a string raised a TypeError that named nothing.
    with pytest.raises(ValueError, match=rf"^x={value!r} is invalid: expected {expected} \(why\)\.$"):
        check("x", value, " (why)")


def test_number_checks_return_a_float():
    assert checks.require_positive_number("temperature", 2) == 2.0
    assert isinstance(checks.require_positive_number("temperature", 2), float)
    assert checks.require_probability("top_p", 1) == 1.0
    with pytest.raises(ValueError, match=r"^temperature=inf is invalid: expected a number > 0\.$"):
        checks.require_positive_number("temperature", float("inf"))
