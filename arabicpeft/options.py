"""Command-line options: those made from :class:`~arabicpeft.config.ExperimentConfig` fields (help, default, valid
range and choices from the field itself, so ``--help`` cannot drift from the code) and the argparse types of the
options that are not config fields, each refusing a bad value while the arguments are parsed. Torch-free.

Public: :func:`add_config_options`, :func:`comma_list`, :func:`in_range`, :func:`at_least`, :func:`window`,
:func:`subtitle_formats`, :func:`shard`.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Optional

from . import commands
from .config import SUBTITLE_FORMATS, ExperimentConfig
from .errors import UserError


def _field_type(field: dataclasses.Field):
    hint = typing.get_type_hints(ExperimentConfig)[field.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) is typing.Union else hint


def comma_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _show(value) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def _field_help(name: str, default=dataclasses.MISSING, note: Optional[str] = None) -> str:
    """The one-line help of config field ``name`` (from its metadata) with its choices, then ``note`` or its
    default (unless the help already says what the default is), and its valid range."""
    field = {f.name: f for f in dataclasses.fields(ExperimentConfig)}[name]
    text = field.metadata["help"]
    if name == "model":
        from .offline_model import OFFLINE_MODELS  # torch-free

        text += f" ({', '.join(OFFLINE_MODELS)}: no hub needed)"
    default = field.default if default is dataclasses.MISSING else default
    if "default" in text.lower():
        pass  # the help says what the default means
    elif note:
        text += f" ({note})"
    elif default is not dataclasses.MISSING:
        text += f" (default: {_show(default)})"
    if ExperimentConfig.valid_range(name):
        text += f" [{ExperimentConfig.valid_range(name)}]"
    return text.replace("%", "%%")  # argparse formats help with %


def in_range(name: str, kind: type):
    """An argparse ``type`` for config field ``name``: the text as ``kind``, refused while parsing (one line naming
    the option) when it lies outside the field's declared range (:meth:`ExperimentConfig.check_value`)."""

    def parse(text: str):
        value = kind(text)  # a ValueError: argparse says "invalid int value"
        if ExperimentConfig.valid_range(name):
            try:
                ExperimentConfig.check_value(name, value)
            except UserError:
                raise argparse.ArgumentTypeError(f"{text} is out of range: it must be "
                                                 f"{ExperimentConfig.valid_range(name)}") from None
        return value

    parse.__name__ = kind.__name__
    return parse


def at_least(minimum: int):
    """An argparse ``type`` for a count option that is not a config field: an int of at least ``minimum``."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is out of range: it must be at least {minimum}")
        return value

    parse.__name__ = "int"
    return parse


def add_config_options(parser: argparse.ArgumentParser, defaults: ExperimentConfig,
                       names: Optional[list[str]] = None, default_note: Optional[str] = None,
                       helps: Optional[dict[str, str]] = None) -> None:
    """One option per config field (``names``, default: all); help, choices and defaults come from the field.

    All fields: grouped by the config's sections. ``default_note`` replaces the default shown and leaves the
    option unset (None) when not given (e.g. ``evaluate``, whose unset options keep the trained run's values);
    ``helps`` replaces a field's help where a command gives it another meaning."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for field in dataclasses.fields(ExperimentConfig):
        if field.name in commands.NOT_OPTIONS or (names is not None and field.name not in names):
            continue
        section = field.metadata["section"]
        group = parser if names else (groups.get(section) or groups.setdefault(section, parser.add_argument_group(section)))
        flag = "--" + field.name.replace("_", "-")
        kind = _field_type(field)
        default = None if default_note else getattr(defaults, field.name)
        help_text = (helps or {}).get(field.name) or _field_help(field.name, default=default, note=default_note)
        allowed = ExperimentConfig.choices(field.name)
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif typing.get_origin(kind) is list:
            group.add_argument(flag, type=comma_list, default=default, metavar="A,B", help=help_text)
        else:
            metavar = "{" + ",".join(allowed) + "}" if allowed else {int: "N", float: "X"}.get(kind, "TEXT")
            parse = str if allowed else in_range(field.name, kind) if kind in (int, float) else kind
            group.add_argument(flag, type=parse, default=default, choices=allowed, metavar=metavar, help=help_text)


def window(text: str):
    """``--window``: ``trained``, ``full`` or a whole number of seconds, checked while the arguments are parsed."""
    if text in ("trained", "full"):
        return text
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give trained, full or a whole number of seconds (e.g. 8)")
    return int(text)


def subtitle_formats(text: str) -> list[str]:
    """``transcribe --subtitles``: the formats, lower-cased, checked while the arguments are parsed (before a
    model loads)."""
    formats = [f.lower() for f in comma_list(text)]
    unknown = [f for f in formats if f not in SUBTITLE_FORMATS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown subtitle format(s) {', '.join(unknown)}: choose from "
                                         f"{', '.join(SUBTITLE_FORMATS)}")
    return formats


def shard(text: str) -> tuple[int, int]:
    """``--shard K/N`` -> (K, N), 1 <= K <= N."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not K/N (e.g. 1/2)") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"{text!r}: K must be between 1 and N")
    return k, n
