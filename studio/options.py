"""Config fields as data: every field of a method's config (and of the loop) says its label, help, bounds and choices.

`option()` declares a field with that metadata; everything else here is generated from it, so an option is
written once: the CLI's flags (`add_flags`), checking values a person gave (`check` / `check_values`, naming the
field in every error and turning 3.0 into 3 where a whole number is meant), and what a form widget needs
(`widget`: label and info). No gradio here: the UI passes `widget(...)` to its components.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from dataclasses import MISSING, dataclass
from functools import cache
from typing import Any, Callable

from studio.errors import UserError


def option(default: Any = MISSING, *, label: str | None = None, help: str = "", min: float | None = None,
           max: float | None = None, why_max: str = "", choices: tuple | Callable[[], tuple] | None = None,
           required: bool = False) -> Any:
    """A dataclass field with its metadata. `why_max`: why the upper bound is there, said when a value passes it;
    `choices`: the allowed values (or a function giving them, for registries that grow); `required`: the CLI
    asks for it (a field without a default is required anyway)."""
    meta = {"label": label, "help": help, "min": min, "max": max, "why_max": why_max, "choices": choices,
            "required": required}
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Option:
    """One config field, read from its dataclass: what `option()` said, its type and its default."""

    name: str
    kind: type                 # int, float, str or bool
    optional: bool             # None is allowed ("empty")
    default: Any
    label: str
    help: str
    min: float | None
    max: float | None
    why_max: str
    choices: tuple | Callable[[], tuple] | None
    required: bool

    @property
    def allowed(self) -> tuple | None:
        return self.choices() if callable(self.choices) else self.choices

    @property
    def title(self) -> str:
        """How errors name it: the label without its parenthetical, then the field ("Resolution (resolution)")."""
        return f"{self.label.split(' (')[0]} ({self.name})"


@cache
def options(cls: type) -> dict[str, Option]:
    """The options of a config dataclass, by field name, in field order."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        args = typing.get_args(hint) or (hint,)
        kind = next((t for t in (bool, int, float, str) if t in args), str)
        meta = f.metadata
        out[f.name] = Option(f.name, kind, type(None) in args, f.default, meta.get("label") or f.name.replace("_", " ").capitalize(),
                             meta.get("help", ""), meta.get("min"), meta.get("max"), meta.get("why_max", ""),
                             meta.get("choices"), meta.get("required", False) or f.default is MISSING)
    return out


def check(opt: Option, value: Any) -> Any:
    """`value` as the field wants it (3.0 → 3 for a whole number, 0 → 0.0 for a float), or a UserError naming the field."""
    if value is None:
        if opt.optional:
            return None
        raise UserError(f"{opt.title} needs a value.")
    if opt.kind is bool:
        if not isinstance(value, bool):
            raise UserError(f"{opt.title} is on or off (true or false), not {value!r}.")
        return value
    if opt.kind in (int, float):
        return _check_number(opt, value)
    if not isinstance(value, str):
        raise UserError(f"{opt.title} must be text, not {value!r}.")
    allowed = opt.allowed
    if allowed is not None and value not in allowed:
        raise UserError(f"{opt.title} must be one of {', '.join(map(str, allowed))}, not {value!r}.")
    return value


def _check_number(opt: Option, value: Any) -> int | float:
    whole = opt.kind is int
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    low = -math.inf if opt.min is None else opt.min
    high = math.inf if opt.max is None else opt.max
    if number and (not whole or value == int(value)) and low <= value <= high:
        return int(value) if whole else float(value)  # `--beta1 0` types an int; torch's Adam refuses (0, 0.999)
    what = ("a whole number" if whole else "a number") + (" " + _span(opt, "from ", "of ") if _span(opt) else "")
    reason = f": {opt.why_max}" if number and value > high and opt.why_max else ""
    raise UserError(f"{opt.title} must be {what}, not {value!r}{reason}.")


def _span(opt: Option, from_: str = "", of: str = "") -> str:
    """"1 to 1000000", "at least 0", "at most 1" or "" (no bounds); `from_`/`of` prefix it inside a sentence."""
    low, high = (None if v is None else f"{v:,g}".replace(",", "") if v != int(v) else str(int(v)) for v in (opt.min, opt.max))
    if low is not None and high is not None:
        return f"{from_}{low} to {high}"
    return f"{of}at least {low}" if low is not None else f"{of}at most {high}" if high is not None else ""


def check_values(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """Each given value checked (see `check`); an unknown name is refused by name too."""
    known = options(cls)
    out = {}
    for name, value in values.items():
        if name not in known:
            raise UserError(f"There is no setting {name!r} here: choose from {', '.join(known)}.")
        out[name] = check(known[name], value)
    return out


def add_flags(parser: argparse.ArgumentParser, cls: type, *, skip: tuple[str, ...] = ()) -> None:
    """One flag per field (`--lr-g`). Defaults live only in the dataclass: a flag not given is None (a switch
    too: --x / --no-x), so a preset or a resumed run's own values are not overridden; values are checked by `check_values`."""
    for opt in options(cls).values():
        if opt.name in skip:
            continue
        flag = f"--{opt.name.replace('_', '-')}"
        allowed = f" ({', '.join(map(str, opt.allowed))})" if opt.allowed else ""
        text = f"{opt.help}{allowed}" if opt.help else opt.label + allowed
        if opt.kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                                help=f"{text} (default {'on' if opt.default else 'off'})")
            continue
        default = "" if opt.required else f" (default {opt.default})"
        parser.add_argument(flag, type=_parse_number if opt.kind in (int, float) else str, default=None,
                            required=opt.required, help=text + default)


def _parse_number(text: str) -> int | float:
    """Text to a number as typed (2.5 stays 2.5), so that `check` can say which field wants a whole one."""
    try:
        return int(text)
    except ValueError:
        return float(text)  # not a number: argparse says "invalid number value: 'x'"


_parse_number.__name__ = "number"  # argparse names the type in its error: "invalid number value: 'x'"


def given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The flags of `cls` a command line gave (None: not given)."""
    return {name: getattr(args, name) for name in options(cls) if getattr(args, name, None) is not None}


def widget(cls: type, name: str) -> dict[str, Any]:
    """Keyword arguments for a form widget of field `name`: its label and info (help, and a number's range).

    Bounds and whole-number-ness are not handed to the widget: gradio would refuse a value without naming the
    field (and log a traceback) or round 2.5 to 2 in silence; the handler checks them with `check` instead.
    """
    opt = options(cls)[name]
    kwargs: dict[str, Any] = {"label": opt.label}
    span = _span(opt) if opt.kind in (int, float) else ""
    if span:
        kwargs["info"] = f"{opt.help}; {span}" if opt.help else span
    elif opt.help:
        kwargs["info"] = opt.help
    return kwargs
