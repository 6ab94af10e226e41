"""nessa_lib.stages.schema: typed stage parameters on hand-made sections."""

import dataclasses

import pytest

from nessa_lib.stages import schema
from nessa_lib.stages.schema import field


@dataclasses.dataclass(frozen=True)
class Toy:
    seed: int = field(source="base.seed")
    rounds: int = field(ge=1)
    far: float = field(gt=0, lt=1)
    methods: tuple[str, ...] = field(choices=("a", "b"), each=True)
    sizes: tuple[int, ...] = field(ge=0, each=True)
    cap: int | None = field(ge=1)
    name: str = field()
    pairs: dict = field()
    flag: bool = field()

    def cross_checks(self):
        return [] if self.rounds >= len(self.methods) else ["toy.rounds must cover every method"]


GOOD = {"base": {"seed": 3}, "toy": {"rounds": 2, "far": 0.5, "methods": ["a", "b"], "sizes": [0, 4], "cap": None,
                                     "name": "x", "pairs": {}, "flag": True}}


def section(**changes):
    data = {"base": dict(GOOD["base"]), "toy": {**GOOD["toy"], **changes}}
    return data


def test_builds_a_frozen_typed_instance():
    p = schema.build(Toy, section(), "toy")
    assert p.seed == 3 and p.methods == ("a", "b") and p.sizes == (0, 4) and p.cap is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.rounds = 5


def test_an_integer_is_accepted_for_a_float_and_converted():
    assert schema.build(Toy, section(), "toy").far == 0.5
    with pytest.raises(ValueError, match=r"toy.far must be < 1, got 1.0"):
        schema.build(Toy, section(far=1), "toy")


@pytest.mark.parametrize("changes, message", [
    ({"rounds": 0}, "params.yaml: toy.rounds must be >= 1, got 0"),
    ({"rounds": True}, "toy.rounds must be an integer, got True"),
    ({"rounds": 2.0}, "toy.rounds must be an integer, got 2.0"),
    ({"far": "1e-3"}, "toy.far must be a number, got '1e-3' (write floats with a dot"),
    ({"methods": ["a", "c"]}, "toy.methods must be one of ['a', 'b'], got 'c'"),
    ({"methods": "a"}, "toy.methods must be a list, got 'a'"),
    ({"sizes": [1, -1]}, "toy.sizes must be >= 0, got -1"),
    ({"sizes": [1, "2"]}, "toy.sizes[1] must be an integer, got '2'"),
    ({"cap": 0}, "toy.cap must be >= 1, got 0"),
    ({"name": 5}, "toy.name must be a string, got 5"),
    ({"pairs": []}, "toy.pairs must be a mapping, got []"),
    ({"flag": "yes"}, "toy.flag must be true or false, got 'yes'"),
    ({"extra": 1}, "toy has unknown key 'extra'"),
    ({"rounds": 1}, "params.yaml: toy.rounds must cover every method"),
])
def test_each_problem_names_its_key(changes, message):
    with pytest.raises(ValueError) as err:
        schema.build(Toy, section(**changes), "toy")
    assert message in str(err.value)


def test_missing_keys_and_sections_are_named():
    data = section()
    del data["toy"]["rounds"]
    del data["base"]
    with pytest.raises(ValueError) as err:
        schema.build(Toy, data, "toy")
    assert "toy.rounds is missing" in str(err.value) and "base.seed is missing" in str(err.value)
    with pytest.raises(ValueError, match="section 'toy' is missing"):
        schema.build(Toy, {"base": {"seed": 0}}, "toy")


def test_every_problem_is_reported_at_once():
    with pytest.raises(ValueError) as err:
        schema.build(Toy, section(rounds=0, far=2.0, name=1), "toy")
    assert len(str(err.value).splitlines()) == 3


def test_keys_name_where_each_value_lives():
    assert schema.keys(Toy, "toy")["seed"] == "base.seed"
    assert schema.keys(Toy, "toy")["rounds"] == "toy.rounds"


def test_read_params_file_names_the_file(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    with pytest.raises(FileNotFoundError, match="parameters file not found"):
        schema.read_params_file("params.yaml", root=tmp_path)
    (tmp_path / "params.yaml").write_text("a: [1\n")
    with pytest.raises(ValueError, match="params.yaml: not valid YAML"):
        schema.read_params_file("params.yaml", root=tmp_path)
    (tmp_path / "params.yaml").write_text("- 1\n")
    with pytest.raises(ValueError, match="params.yaml: the top level must be a mapping"):
        schema.read_params_file("params.yaml", root=tmp_path)


@dataclasses.dataclass(frozen=True)
class Inner:
    top_k: int = field(ge=2)
    size: int = field(ge=0)


@dataclasses.dataclass(frozen=True)
class Outer:
    inner: Inner = field()


def test_a_nested_mapping_is_checked_key_by_key():
    """A field annotated with a dataclass is a YAML mapping whose keys are checked like a section's."""
    p = schema.build(Outer, {"s": {"inner": {"top_k": 3, "size": 0}}}, "s")
    assert p.inner == Inner(3, 0)
    for body, message in [({"top_k": 1, "size": 0}, "params.yaml: s.inner.top_k must be >= 2, got 1"),
                          ({"top_k": 2}, "params.yaml: s.inner.size is missing"),
                          ({"top_k": 2, "size": 0, "k": 1}, "s.inner has unknown key 'k'; valid: ['top_k', 'size']"),
                          ({"top_k": "2", "size": 0}, "s.inner.top_k must be an integer, got '2'"),
                          (5, "s.inner must be a mapping, got 5")]:
        with pytest.raises(ValueError) as err:
            schema.build(Outer, {"s": {"inner": body}}, "s")
        assert message in str(err.value)
