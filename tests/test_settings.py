"""envs.settings: values written as text read as their fields' types, on a hand-made class."""

from dataclasses import dataclass

import pytest

from dsmnas.envs.errors import ConfigError
from dsmnas.envs.settings import parse_settings, read_values, setting


@dataclass(frozen=True)
class Made:
    n: int = setting(1, "an integer")
    x: float | None = setting(None, "a number or nothing")
    name: str = setting("a", "text")
    ks: tuple[int, ...] = setting((), "integers")
    fs: tuple[float, ...] = setting((), "numbers")


def test_text_and_single_values_are_read_as_the_fields_types():
    values = read_values(Made, {"n": " 3 ", "x": "2e4", "name": "b", "ks": "2, 4,,8",
                                "fs": 1, "other": "kept"})
    assert values == {"n": 3, "x": 20000.0, "name": "b", "ks": (2, 4, 8), "fs": (1.0,),
                      "other": "kept"}
    assert type(values["fs"][0]) is float
    assert read_values(Made, {"x": None, "ks": None, "fs": [0, "1e-3"]}) == {
        "x": None, "ks": (), "fs": (0.0, 1e-3)}
    # what is read is what parse_settings builds; the key it does not know it refuses
    assert parse_settings("made", read_values(Made, {"ks": "2,4"}), Made) == (Made(ks=(2, 4)),)
    with pytest.raises(ConfigError, match=r"unknown made setting\(s\) \['other'\]"):
        parse_settings("made", read_values(Made, {"other": 1}), Made)


@pytest.mark.parametrize("values, message", [
    ({"n": "2.0"}, "n: '2.0' is not an integer"),
    ({"n": 2.5}, "n: 2.5 is not an integer"),
    ({"n": True}, "n: True is not an integer"),
    ({"n": None}, "n: None is not an integer"),
    ({"x": "lots"}, "x: 'lots' is not a number"),
    ({"ks": [2, "x"]}, "ks: 'x' is not an integer"),
    ({"ks": {"a": 1}}, "ks must be a value or a list, got a mapping"),
    ({"name": 3}, "name must be text, got 3"),
])
def test_an_item_of_another_type_is_named(values, message):
    with pytest.raises(ConfigError) as e:
        read_values(Made, values)
    assert str(e.value) == message
