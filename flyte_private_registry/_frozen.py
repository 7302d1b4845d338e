"""Frozen value classes without ``dataclasses``' code generation.

Why: ``@dataclass`` compiles every method it adds with ``exec``, about 1.5 ms of CPU per class
on a 2-core machine. The first existence check of a ``pyflyte`` run imports fourteen value
classes (names, platforms, credentials, challenges, tokens, ECR hosts), and building them cost
~20 ms, a third of that check's CPU (issue 10, goal 3; ``benchmarks/first_check.py``).
:func:`frozen` gives those classes what they used of dataclasses from functions shared by all
of them, so defining one costs microseconds: an ``__init__`` taking fields by position or
keyword with defaults and per-field factories, ``__post_init__``, immutability
(:class:`dataclasses.FrozenInstanceError`), equality and hashing over the fields, optional
ordering, and a repr that leaves out secrets. Fields are the class's own annotations, in order
(no inheritance of fields). Classes off that path keep ``@dataclass``.
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import FrozenInstanceError
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:

    def dataclass_transform(**_: Any) -> Callable[[Any], Any]:
        return lambda decorator: decorator


_C = TypeVar("_C", bound=type)


def _fields(cls: type) -> tuple[str, ...]:
    """The class's own annotated names, in order, but ``ClassVar`` ones (strings under ``__future__``)."""
    own = inspect.get_annotations(cls)
    return tuple(name for name, kind in own.items() if not str(kind).startswith(("ClassVar", "typing.ClassVar")))


def _frozen_setattr(self: object, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: object, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


@dataclass_transform(frozen_default=True, eq_default=True)
def frozen(
    *, hide: Iterable[str] = (), order: bool = False, factories: Mapping[str, Callable[[], Any]] | None = None
) -> Callable[[_C], _C]:
    """Make ``cls`` a frozen value class; ``hide`` names fields its repr leaves out (tokens, passwords)."""
    hidden, made = frozenset(hide), dict(factories or {})

    def wrap(cls: _C) -> _C:
        names = _fields(cls)
        defaults = {name: cls.__dict__[name] for name in names if name in cls.__dict__}
        unknown = (hidden | set(made)) - set(names)
        if unknown:
            raise TypeError(f"{cls.__name__}: {sorted(unknown)} are not fields")
        optional = [name in defaults or name in made for name in names]
        if optional != sorted(optional):
            raise TypeError(f"{cls.__name__}: a field without a default follows one with a default")
        shown = tuple(name for name in names if name not in hidden)
        title = cls.__qualname__

        def values(self: Any) -> tuple[Any, ...]:
            found = self.__dict__
            return tuple(found[name] for name in names)

        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            if len(args) > len(names):
                raise TypeError(f"{title}() takes {len(names)} arguments but {len(args)} were given")
            given = dict(zip(names, args, strict=False))
            for key, value in kwargs.items():
                if key not in names:
                    raise TypeError(f"{title}() got an unexpected keyword argument {key!r}")
                if key in given:
                    raise TypeError(f"{title}() got multiple values for argument {key!r}")
                given[key] = value
            for name in names:
                if name in given:
                    continue
                if name in made:
                    given[name] = made[name]()
                elif name in defaults:
                    given[name] = defaults[name]
                else:
                    raise TypeError(f"{title}() missing required argument {name!r}")
            self.__dict__.update(given)
            post = getattr(self, "__post_init__", None)
            if post is not None:
                post()

        def __eq__(self: Any, other: object) -> bool:
            if other.__class__ is not self.__class__:
                return NotImplemented
            return values(self) == values(other)

        def __hash__(self: Any) -> int:
            return hash(values(self))

        def __repr__(self: Any) -> str:
            return f"{title}({', '.join(f'{name}={self.__dict__[name]!r}' for name in shown)})"

        methods: dict[str, Any] = {
            "__init__": __init__,
            "__eq__": __eq__,
            "__hash__": __hash__,
            "__repr__": __repr__,
            "__setattr__": _frozen_setattr,
            "__delattr__": _frozen_delattr,
        }
        if order:

            def compare(test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
                def method(self: Any, other: Any) -> bool:
                    if other.__class__ is not self.__class__:
                        return NotImplemented
                    return test(values(self), values(other))

                return method

            methods.update(
                __lt__=compare(operator.lt),
                __le__=compare(operator.le),
                __gt__=compare(operator.gt),
                __ge__=compare(operator.ge),
            )
        for name, method in methods.items():
            if name not in cls.__dict__:  # a method the class writes itself wins, as with dataclasses
                setattr(cls, name, method)
        cls.__match_args__ = names  # type: ignore[attr-defined]
        return cls

    return wrap
