"""A parameter declared once, and the one check every entry runs on its values.

A :class:`Param` is a name, a kind (``int``, ``float``, ``str``, ``bool``, a closed set of
choices, or a file path), a default, an allowed range and a help text. The command line parses
an option's text with :meth:`Param.parse`; a plan file's JSON value and a Python argument go
through :meth:`Param.check`. Both end in the same checks with the same message, prefixed by where
the value came from (``--taus``, ``plan.json: field 'compensation.taus'``, ``taus``), so a value
is refused alike from every entry, before any model loads:

>>> taus = Param("taus", float, (0.1, 0.3), "exponents τ", many=True, low=0, above=True)
>>> taus.check([0.1, float("nan")])
Traceback (most recent call last):
lens_focus.params.ParamError: taus: every value must be a finite number > 0, got nan
>>> taus.parse("0.3,0.3")
Traceback (most recent call last):
lens_focus.params.ParamError: --taus: 0.3 given more than once, in 0.3, 0.3

Numbers are finite (never NaN or ±inf); a list holds at least one value and no value twice; a
number of the kind ``int`` is a whole number (``3``, not ``3.5`` or ``true``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, get_args

from .errors import InputError

ALL = "all"
"""The word a head count may take for every head of the model."""


class ParamError(InputError):
    """A value a parameter does not take; the message names where it came from."""


Kind = type | tuple
"""``int``, ``float``, ``str``, ``bool``, ``Path``, or a tuple of the strings allowed (a closed set)."""


def choices(literal) -> tuple[str, ...]:
    """The strings of a ``Literal`` type, as a :class:`Param`'s kind."""
    return tuple(get_args(literal))


@dataclass(frozen=True)
class Param:
    """One parameter: its ``name`` (a Python identifier; ``--name-with-dashes`` on the command
    line), ``kind``, ``default``, ``help``, and the values it allows: ``many`` (a tuple of values,
    comma-separated on the command line, a list in JSON), ``low``/``high`` bounds (``above``:
    strictly above ``low``), ``all_ok`` (a head count that may be ``all``), ``optional`` (None
    allowed: the parameter's absence), ``keyed`` (a grid of settings: every cached cell's key names
    the value it was computed at, so that a run whose plan changes only such parameters keeps the
    cells already computed)."""

    name: str
    kind: Kind
    default: Any
    help: str
    many: bool = False
    low: int | float | None = None
    high: int | float | None = None
    above: bool = False
    all_ok: bool = False
    optional: bool = False
    keyed: bool = False

    def __post_init__(self) -> None:
        if self.default is not None:  # None: no default (optional: the parameter may be absent; else it is needed)
            object.__setattr__(self, "default", self.check(self.default, f"the default of {self.name}"))

    @property
    def option(self) -> str:
        """Its command-line option, ``--name-with-dashes``."""
        return "--" + self.name.replace("_", "-")

    # ----------------------------------------------------------------- one value
    def _bound(self) -> str:
        if self.low is not None and self.high is not None:
            return f"within {self.low:g}..{self.high:g}"
        if self.low is not None:
            return f"{'>' if self.above else '>='} {self.low:g}"
        return f"<= {self.high:g}" if self.high is not None else ""

    def _what(self) -> str:
        """What one value must be, for messages: ``a whole number >= 1 (or all)``."""
        if isinstance(self.kind, tuple):
            return "one of " + ", ".join(repr(c) for c in self.kind)
        noun = {int: "a whole number", float: "a finite number", str: "text", bool: "true or false", Path: "a file path"}[self.kind]
        bound = self._bound()
        return f"{noun}{' ' + bound if bound else ''}{' (or all)' if self.all_ok else ''}"

    def _one(self, value, where: str, text: bool):
        """``value`` (command-line text when ``text``) as a value of the kind, checked."""
        bad = ParamError(f"{where}: {'every value' if self.many else 'the value'} must be {self._what()}, got {_show(value, text)}")
        if self.all_ok and value == ALL:
            return ALL
        if isinstance(self.kind, tuple):
            if value not in self.kind:
                raise ParamError(f"{where}: {value!r} is not one of {', '.join(repr(c) for c in self.kind)}")
            return value
        if self.kind is bool:
            if text and str(value).lower() in ("true", "false"):
                return str(value).lower() == "true"
            if isinstance(value, bool):
                return value
            raise bad
        if self.kind in (str, Path):
            if not isinstance(value, (str, Path)) or not str(value):
                raise bad
            return str(value) if self.kind is str else Path(value)
        if text:  # the command line gives text: read the number in it
            try:
                value = float(value) if self.kind is float else int(str(value).strip())
            except ValueError:
                raise bad from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        if not math.isfinite(value) or (self.kind is int and value != int(value)):
            raise bad
        value = int(value) if self.kind is int else float(value)
        if (self.low is not None and (value < self.low or (self.above and value == self.low))) or (self.high is not None and value > self.high):
            raise bad
        return value

    # ------------------------------------------------------------------ entries
    def check(self, value, where: str | None = None):
        """``value`` (a Python or JSON value) checked and normalised (a list as a tuple); a
        :class:`ParamError` naming ``where`` (default: the parameter's name) otherwise."""
        where = where or self.name
        if value is None:
            if self.optional:
                return None
            raise ParamError(f"{where}: a value is needed ({self._what()})")
        if not self.many:
            if isinstance(value, (list, tuple)):
                raise ParamError(f"{where}: one value is needed ({self._what()}), got a list {list(value)!r}")
            return self._one(value, where, text=False)
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise ParamError(f"{where}: a list is needed (each {self._what()}), got {type(value).__name__} {value!r}")
        return self._unique(tuple(self._one(v, where, text=False) for v in value), where)

    def parse(self, text: str, where: str | None = None):
        """The value written ``text`` on the command line (comma-separated for ``many``), checked
        as :meth:`check` does."""
        where = where or self.option
        if not self.many:
            return self._one(text.strip(), where, text=True)
        values = [v.strip() for v in str(text).split(",")]
        if any(not v for v in values):
            raise ParamError(f"{where}: expected comma-separated values (each {self._what()}), got {text!r}")
        return self._unique(tuple(self._one(v, where, text=True) for v in values), where)

    def _unique(self, values: tuple, where: str) -> tuple:
        if not values:
            raise ParamError(f"{where}: at least one value is needed (each {self._what()})")
        repeated = sorted({_show(v, False) for v in values if values.count(v) > 1})
        if repeated:
            raise ParamError(f"{where}: {', '.join(repeated)} given more than once, in {', '.join(_show(v, False) for v in values)}")
        return values

    def text(self, value=None) -> str:
        """A value as the command line writes it (the default when none is given)."""
        value = self.default if value is None else value
        if value is None:
            return ""
        values = value if self.many else (value,)
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v).lower() if isinstance(v, bool) else str(v) for v in values)

    def to_json(self, value):
        """A value as a plan file writes it."""
        if isinstance(value, tuple):
            return [str(v) if isinstance(v, Path) else v for v in value]
        return str(value) if isinstance(value, Path) else value


def _show(value, text: bool) -> str:
    """A value in a message, the same whichever entry gave it: a number as written (``nan``,
    ``-1``, ``0.5``), anything else quoted."""
    if text:
        try:
            float(value)
            return str(value).strip()
        except ValueError:
            return repr(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else repr(value)


def checked(params: Sequence[Param], values: dict, label: Callable[[str], str] = str) -> dict:
    """``values`` (by parameter name) each checked by its parameter; ``label(name)`` names a
    parameter in messages (an option, a file's field)."""
    by_name = {p.name: p for p in params}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise ParamError(f"{', '.join(label(u) for u in unknown)}: not {'parameters' if len(unknown) > 1 else 'a parameter'} of this; "
                         f"they are {', '.join(label(n) for n in by_name)}")  # fmt: skip
    return {name: by_name[name].check(v, label(name)) for name, v in values.items()}
