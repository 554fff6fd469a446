"""`--param NAME=SPEC`: what a study may vary, read strictly."""

import pytest

from lenet5.sweep.space import Param, SpaceError, check_space, parse_param


@pytest.mark.parametrize("text, expected", [
    ("lr=log:1e-4:1e-2", Param("lr", "log", 1e-4, 1e-2)),
    ("momentum=float:0.8:0.99", Param("momentum", "float", 0.8, 0.99)),
    ("epochs=int:3:10", Param("epochs", "int", 3, 10)),
    ("augment=choice:none,affine", Param("augment", "choice", choices=("none", "affine"))),
    ("--batch-size=choice:64,128", Param("batch-size", "choice", choices=("64", "128"))),
    ("loss=choice:map,mle", Param("loss", "choice", choices=("map", "mle"))),
])
def test_each_kind_of_range_is_read(text, expected):
    assert parse_param(text) == expected


@pytest.mark.parametrize("text, says", [
    ("lr", "expected NAME=SPEC"),
    ("colour=choice:red,blue", "'colour' is not an option of lenet5 train"),
    ("out=choice:a,b", "'out' is not an option"),
    ("lr=normal:0:1", "must start with one of log:, float:, int:, choice:"),
    ("lr=log:0:1", "a log range needs LOW > 0"),
    ("lr=float:1:0", "LOW must be at most HIGH"),
    ("lr=float:a:b", "float needs two numbers"),
    ("epochs=int:1.5:3", "int needs two integers"),
    ("augment=choice:none,,affine", "distinct, non-empty values"),
    ("augment=choice:none,none", "distinct, non-empty values"),
    ("lr=float:nan:1", "both finite"),
])
def test_a_malformed_param_is_one_line_naming_it(text, says):
    with pytest.raises(SpaceError, match=None) as caught:
        parse_param(text)
    message = str(caught.value)
    assert "\n" not in message and text in message and says in message, message


def test_a_name_varied_twice_is_refused():
    with pytest.raises(SpaceError, match="--param names lr more than once"):
        check_space([parse_param("lr=log:1e-3:1e-1"), parse_param("lr=float:0.1:0.2")])


def test_a_drawn_value_is_written_as_lenet5_train_reads_it():
    class Trial:  # draws the low end of every range
        def suggest_float(self, name, low, high, log):
            return low

        def suggest_int(self, name, low, high):
            return low

        def suggest_categorical(self, name, choices):
            return choices[-1]

    assert parse_param("lr=log:1e-4:1e-2").suggest(Trial()) == "0.0001"
    assert parse_param("epochs=int:3:10").suggest(Trial()) == "3"
    assert parse_param("augment=choice:none,affine").suggest(Trial()) == "affine"
