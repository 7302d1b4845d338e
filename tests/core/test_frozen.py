"""``_frozen.frozen``: the value classes of the check path behave as ``@dataclass(frozen=True)`` did."""

from __future__ import annotations

import copy
import pickle
from dataclasses import FrozenInstanceError, dataclass, field
from typing import ClassVar

import pytest

from flyte_private_registry._frozen import frozen
from flyte_private_registry._platform import Platform
from flyte_private_registry.credentials import Credential
from flyte_private_registry.distribution._auth import TokenGrant
from flyte_private_registry.distribution._token_cache import CachedToken


@frozen(hide=("token",), factories={"tags": list})
class Pair:
    KIND: ClassVar[str] = "pair"

    name: str
    token: str
    count: int = 0
    tags: list[str]


@dataclass(frozen=True)
class PairDataclass:
    """The same class as a dataclass: what ``Pair`` must match."""

    name: str
    token: str = field(repr=False)
    count: int = 0
    tags: list[str] = field(default_factory=list)


def test_fields_by_position_or_keyword_with_defaults_and_fresh_factories():
    a = Pair("a", "t1")
    b = Pair(name="a", token="t1", count=0)
    assert (a.name, a.token, a.count, a.tags) == ("a", "t1", 0, [])
    assert a.tags is not b.tags  # a factory runs per instance, as default_factory does
    assert Pair("a", "t1", 2, ["x"]).tags == ["x"]
    assert Pair.KIND == "pair" and "KIND" not in Pair.__match_args__


def test_equality_and_hash_follow_the_fields_like_a_dataclass():
    assert Pair("a", "t", 1) == Pair("a", "t", 1)
    assert Pair("a", "t", 1) != Pair("a", "t", 2)
    assert Pair("a", "t") != PairDataclass("a", "t")  # another class is never equal
    assert hash(Platform("linux", "amd64")) == hash(Platform("linux", "amd64"))
    assert len({Platform("linux", "amd64"), Platform("linux", "amd64"), Platform("linux", "arm64")}) == 2
    with pytest.raises(TypeError):  # a list field is unhashable, as with dataclasses
        hash(Pair("a", "t"))


def test_order_is_by_fields_in_order():
    ordered = sorted([Platform("linux", "arm64", "v8"), Platform("linux", "amd64"), Platform("darwin", "arm64")])
    assert [str(p) for p in ordered] == ["darwin/arm64", "linux/amd64", "linux/arm64/v8"]
    with pytest.raises(TypeError):
        _ = Pair("a", "t") < Pair("b", "t")  # no order unless asked for


def test_instances_are_frozen():
    pair = Pair("a", "t")
    with pytest.raises(FrozenInstanceError):
        pair.name = "b"  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        del pair.name  # type: ignore[misc]
    assert pair.name == "a"


def test_repr_matches_a_dataclass_and_leaves_hidden_fields_out():
    assert repr(Pair("a", "s3cret", 1)).replace("Pair(", "") == repr(PairDataclass("a", "s3cret", 1)).replace(
        "PairDataclass(", ""
    )
    assert "s3cret" not in repr(Pair("a", "s3cret"))
    credential = Credential("alice", "hunter2-canary", source="test")
    assert "hunter2-canary" not in repr(credential) and "alice" in repr(credential)
    grant = TokenGrant("token-canary", 60.0, "refresh-canary")  # a dataclass repr showed both
    assert "canary" not in repr(grant) and "60.0" in repr(grant)
    assert "token-canary" not in repr(CachedToken("token-canary", frozenset(), 1.0))


def test_post_init_runs_and_may_normalize():
    credential = Credential("alice", "pw", source="test")
    assert credential.password.get_secret_value() == "pw" and type(credential.password).__name__ == "Secret"


def test_wrong_arguments_are_type_errors_naming_the_problem():
    with pytest.raises(TypeError, match="missing required argument 'token'"):
        Pair("a")
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        Pair("a", "t", colour="red")
    with pytest.raises(TypeError, match="multiple values for argument 'name'"):
        Pair("a", "t", name="b")
    with pytest.raises(TypeError, match="takes 4 arguments but 5 were given"):
        Pair("a", "t", 1, [], 2)


def test_definitions_a_dataclass_would_refuse_are_refused():
    with pytest.raises(TypeError, match="without a default follows"):

        @frozen()
        class Bad:
            a: int = 1
            b: int

    with pytest.raises(TypeError, match="are not fields"):

        @frozen(hide=("nope",))
        class Hidden:
            a: int


def test_copy_and_pickle_round_trip():
    pair = Pair("a", "t", 3, ["x"])
    assert copy.copy(pair) == pair and copy.deepcopy(pair) == pair
    assert pickle.loads(pickle.dumps(pair)) == pair
    platform = Platform.parse("linux/arm64/v8")
    assert pickle.loads(pickle.dumps(platform)) == platform
