"""ipywidgets pickers: a config picker (its widgets start at a config's values; ``picker.config`` is the config
with every valid change, the given one is never changed) and a study picker (design, axes, base config).

Under Run All, nbval or papermill nobody touches a widget, so the parameters cell's values are what runs; in
an interactive session, change a widget, then run the cells below it.

Public: :func:`config_picker`, :func:`study_picker`, :func:`bank_dialect_picker`.
"""

from __future__ import annotations

import dataclasses
import html
from typing import Sequence

import ipywidgets as widgets

from . import dialects, methods
from .config import MIXTURES, ExperimentConfig
from .offline_model import OFFLINE_MODELS
from .routing import AUTO

_PICKER_FIELDS = ("dialect", "method", "source", "dataset", "audio_column", "text_column", "dialect_column", "model",
                  "adapter_placement", "precision", "seed", "max_steps")
# Starting models the picker suggests (any hub id or local folder can be typed in): the paper's, and the
# other backbones (the family is read from the model's config.json), and the offline ones that need no hub.
_SUGGESTED_MODELS = ("openai/whisper-small", "openai/whisper-base", "openai/whisper-large-v3-turbo",
                     "Qwen/Qwen3-ASR-0.6B-hf", "Qwen/Qwen3-ASR-1.7B-hf", *OFFLINE_MODELS)
# Fields typed in with suggestions: the starting model, and the variety (the paper's names; a source's own
# varieties, or a dialect column's values, can be typed in).
_SUGGESTED = {"model": _SUGGESTED_MODELS, "dialect": dialects.NAMES}
_OPTIONAL_TEXT = ("dataset", "split_train", "split_test", "audio_column", "text_column", "dialect_column")
_NOTE = ("<b>Run All uses the parameters cell, not these widgets</b> (so do nbval and papermill). In an "
        "interactive session: change a value here, then run the cells below by hand. A change is applied to the "
        "config at once if the config stays valid.")
_STYLE = {"description_width": "initial"}


def _control(name: str, value) -> widgets.ValueWidget:
    """A widget for one config field, starting at ``value``."""
    allowed = ExperimentConfig.choices(name)  # the same choices as the CLI and the validation
    if allowed:
        kind = widgets.ToggleButtons if len(allowed) <= 3 else widgets.Dropdown
        return kind(options=list(allowed), value=value, description=name, style=_STYLE)
    if name in _SUGGESTED:  # suggestions; any other value can be typed in (the config checks it)
        return widgets.Combobox(options=list(dict.fromkeys((*_SUGGESTED[name], value))), value=value,
                                description=name, ensure_option=False, style=_STYLE)
    if name in _OPTIONAL_TEXT:  # an unset option is an empty box
        return widgets.Text(value=value or "", placeholder="unset", description=name, style=_STYLE)
    # Numbers in plain text boxes: a value outside the field's range is refused, with the reason, by the config's
    # validation (a bounded box would silently clamp it to the bound instead).
    if isinstance(value, bool):
        return widgets.Checkbox(value=value, description=name, style=_STYLE)
    if isinstance(value, int):
        return widgets.IntText(value=value, description=name, style=_STYLE)
    if isinstance(value, float):
        return widgets.FloatText(value=value, description=name, style=_STYLE)
    if isinstance(value, str):
        return widgets.Text(value=value, description=name, style=_STYLE)
    raise TypeError(f"No picker widget for the config field {name!r} (value {value!r}).")


class _ConfigPicker:
    """Widgets for ``fields`` of ``cfg``; each change is validated (as ExperimentConfig does) and gives a new
    :attr:`config` (``cfg`` itself is never changed). An invalid change (e.g. full fine-tuning of an int8 model)
    is undone and explained below."""

    def __init__(self, cfg: ExperimentConfig, fields: Sequence[str] = _PICKER_FIELDS):
        self.config = cfg  # the picked config: cfg with every change made so far
        self.controls = {name: _control(name, getattr(cfg, name)) for name in fields}
        self.message = widgets.HTML()
        self._undoing = False
        for name, control in self.controls.items():
            control.observe(lambda change, name=name: self._changed(name, change), names="value")
        self.box = widgets.VBox([widgets.HTML(_NOTE), *self.controls.values(), self.message])

    def _changed(self, name: str, change: dict) -> None:
        if self._undoing:
            return
        try:
            value = change["new"] or None if name in _OPTIONAL_TEXT else change["new"]
            checked = dataclasses.replace(self.config, **{name: value})  # runs the config's validation
        except (ValueError, TypeError) as e:
            self._undoing = True
            try:
                self.controls[name].value = change["old"]
            finally:
                self._undoing = False
            self.message.value = f"<b>Not applied</b> ({name} = {html.escape(repr(change['new']))}): {html.escape(str(e))}"
            return
        self.config = checked
        self.message.value = f"{name} = {html.escape(repr(getattr(checked, name)))} (picker.config has it)"

    def values(self) -> dict:
        return {name: (control.value or None) if name in _OPTIONAL_TEXT else control.value
                for name, control in self.controls.items()}

    def _repr_mimebundle_(self, **kwargs):
        return self.box._repr_mimebundle_(**kwargs)


def config_picker(cfg: ExperimentConfig, fields: Sequence[str] = _PICKER_FIELDS) -> _ConfigPicker:
    """A picker for ``fields`` of ``cfg`` (display it as a cell's last expression); ``.config`` is the config
    picked so far (``cfg`` until a widget changes)."""
    return _ConfigPicker(cfg, fields)


def bank_dialect_picker(adapters, value: str) -> widgets.Dropdown:
    """A dialect picker for an adapter bank: each dialect of ``adapters`` (names), and "auto" (the bank's dialect
    router picks each utterance's adapter); starts at ``value``; its ``value`` is the name picked."""
    options = [(f"{dialects.variety(d).display} ({d})", d) for d in adapters] + [("the bank's router picks (auto)", AUTO)]
    return widgets.Dropdown(options=options, value=value, description="dialect", style=_STYLE)


_STUDY_FIELDS = ("precision", "max_steps", *methods.all_fields())  # the settings of every method


def _axis_control(name: str, values: list) -> widgets.ValueWidget:
    """A multiple choice for an axis with known options, else a comma-separated text box."""
    from . import designs

    options = {"dialects": dialects.NAMES, "targets": dialects.NAMES, "test_sets": dialects.VARIETIES,
               "variants": (*ExperimentConfig.choices("method"), *designs.VARIANTS),
               "methods": ExperimentConfig.choices("method"),
               "mixtures": MIXTURES}.get(name)
    if options is not None:
        options = list(dict.fromkeys((*options, *values)))  # a study of one's own varieties offers them too
        return widgets.SelectMultiple(options=options, value=tuple(values), description=name,
                                      rows=min(len(options), 7), style=_STYLE)
    return widgets.Text(value=", ".join(map(str, values)), description=name, style=_STYLE)


class _StudyPicker:
    """A study chooser: the design (:data:`designs.DESIGNS` and presets), its axes and fields of the base config
    (by default the precision, steps and every method's settings). The choices so far: :attr:`design`,
    :attr:`axes` (a copy of the dict given) and :attr:`base` (``cfg`` with the picked fields)."""

    def __init__(self, design: str, axes: dict, cfg: ExperimentConfig, fields: Sequence[str] = _STUDY_FIELDS):
        from . import designs

        self.design, self.axes = design, {name: list(values) for name, values in axes.items()}
        self.design_control = widgets.Dropdown(options=[*designs.DESIGNS, *designs.PRESETS], value=design,
                                               description="design", style=_STYLE)
        self.design_control.observe(lambda change: setattr(self, "design", change["new"]), names="value")
        self.axis_controls = {name: _axis_control(name, values) for name, values in axes.items()}
        for name, control in self.axis_controls.items():
            control.observe(lambda change, name=name: self._axis_changed(name, change["new"]), names="value")
        self._base = _ConfigPicker(cfg, fields)
        self.box = widgets.VBox([self.design_control, *self.axis_controls.values(), self._base.box])

    @property
    def base(self) -> ExperimentConfig:
        return self._base.config

    def _axis_changed(self, name: str, value) -> None:
        if isinstance(value, tuple):
            self.axes[name] = list(value)
            return
        kind = type(self.axes[name][0]) if self.axes.get(name) else str
        try:
            self.axes[name] = [kind(v.strip()) for v in value.split(",") if v.strip()]
        except ValueError as e:
            self._base.message.value = f"<b>Not applied</b> ({name}): {html.escape(str(e))}"

    def _repr_mimebundle_(self, **kwargs):
        return self.box._repr_mimebundle_(**kwargs)


def study_picker(design: str, axes: dict, cfg: ExperimentConfig, fields: Sequence[str] = _STUDY_FIELDS) -> _StudyPicker:
    """A study picker for ``design``, ``axes`` and ``cfg`` (display it as a cell's last expression); read the
    choices from its ``.design``, ``.axes`` and ``.base``."""
    return _StudyPicker(design, axes, cfg, fields)
