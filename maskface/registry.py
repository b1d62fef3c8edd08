"""One registry shape for every kind of named component (styles, renderers, analysers,
recognizers, datasets), in the manner of timm's ``create_model`` / ``list_models``::

    RENDERERS = Registry("renderer")

    @RENDERERS.register("2d")
    def _renderer_2d(**kwargs): ...

    RENDERERS.create("2D")          # names ignore case, and '-' equals '_'
    RENDERERS.list("*d")            # fnmatch-style pattern: ['2d', '3d']
    RENDERERS.create("4d")          # UnknownNameError: unknown renderer '4d'; choose from 2d, 3d

Entries are factories (classes or functions), so a registry can list its names without
importing what the entries build: this module imports nothing heavy.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar, overload

from maskface.errors import InvalidInputError, UnknownNameError

T = TypeVar("T")


def normalize_name(name: str) -> str:
    """The key a name is looked up by: stripped, lower case, ``_`` read as ``-``."""
    return str(name).strip().lower().replace("_", "-")


class Registry(Mapping[str, T], Generic[T]):
    """Named entries of one ``kind``: register, look up, create and list them.

    ``registry[name]`` returns the entry (or raises ``error``, an :class:`UnknownNameError`
    subclass, which lists the choices); ``create(name, **kwargs)`` calls it. Iteration and
    :meth:`list` give canonical names (as registered); aliases are accepted but not listed.
    ``sort`` lists names alphabetically, else in registration order.
    """

    def __init__(self, kind: str, *, sort: bool = True,
                 error: type[UnknownNameError] = UnknownNameError) -> None:
        self.kind = kind
        self._sort = sort
        self._error = error
        self._entries: dict[str, tuple[str, T]] = {}
        self._aliases: dict[str, str] = {}

    @overload
    def register(self, name: str, entry: None = None, *,
                 aliases: Iterable[str] = ()) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, entry: T, *, aliases: Iterable[str] = ()) -> T: ...

    def register(self, name: str, entry: T | None = None, *,
                 aliases: Iterable[str] = ()) -> T | Callable[[T], T]:
        """Add ``entry`` under ``name`` (and ``aliases``); usable as a decorator.

        Registering the same entry again is a no-op; a different one under a taken name
        raises :class:`~maskface.errors.InvalidInputError`.
        """

        def add(value: T) -> T:
            key = normalize_name(name)
            if not key:
                raise InvalidInputError(f"a {self.kind} needs a non-empty name")
            taken = self._entries.get(key)
            if taken is not None and taken[1] is not value:
                raise InvalidInputError(f"a different {self.kind} is already registered as "
                                        f"{taken[0]!r}")
            if key in self._aliases:
                raise InvalidInputError(f"{name!r} is already an alias of {self.kind} "
                                        f"{self._entries[self._aliases[key]][0]!r}")
            self._entries[key] = (name, value)
            for alias in aliases:
                self.alias(alias, name)
            return value

        return add if entry is None else add(entry)

    def alias(self, alias: str, name: str) -> None:
        """Let ``alias`` stand for the entry ``name`` (which may be registered later)."""
        key, target = normalize_name(alias), normalize_name(name)
        if key in self._entries or self._aliases.get(key, target) != target:
            raise InvalidInputError(f"{alias!r} already names a {self.kind}")
        self._aliases[key] = target

    def aliases(self) -> dict[str, str]:
        """``{alias: canonical name}`` for every alias whose entry is registered."""
        return {alias: self._entries[key][0] for alias, key in self._aliases.items()
                if key in self._entries}

    def resolve(self, name: str) -> str:
        """The canonical name of ``name`` (an alias, or another spelling of a name)."""
        key = normalize_name(name) if isinstance(name, str) else None
        key = self._aliases.get(key, key)  # type: ignore[arg-type]
        if key not in self._entries:
            raise self._error(self.kind, name, self.list())
        return self._entries[key][0]

    def create(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call the entry ``name`` with the arguments: build a style, renderer, ..."""
        return self[name](*args, **kwargs)  # type: ignore[operator]

    def list(self, pattern: str | None = None) -> list[str]:
        """Canonical names, all or those matching the fnmatch ``pattern`` (e.g. ``"*95"``);
        matching ignores case and ``-``/``_`` as lookups do."""
        names = [entry[0] for entry in self._entries.values()]
        if pattern is not None:
            wanted = normalize_name(pattern)
            names = [n for n in names if fnmatch.fnmatchcase(normalize_name(n), wanted)]
        return sorted(names) if self._sort else names

    def __getitem__(self, name: str) -> T:
        key = normalize_name(self.resolve(name))
        return self._entries[key][1]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = normalize_name(name)
        return self._aliases.get(key, key) in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.list())})"
