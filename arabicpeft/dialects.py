"""The dialect registry: names, display names, hub datasets and their published sizes.

The data are the preprocessed MASC + Common Voice sets of Özyılmaz et al. (2025) on the HuggingFace hub,
``otozz/{name}_{train,test}_set`` (MSA is spelled upper-case there). Each repo has a single split named
``train``, also the test repos. ``all`` is the paper's dialect-pooled set: the five dialects, without MSA.

A variety is a name plus its data. The paper's six are declared here; any other well-formed name
(:data:`VARIETY_NAME`: ``sudanese``, ``najdi``, ``tunisian`` ...) is a variety as soon as a source declares it (a
recipe's config, a dialect-column value, a manifest's ``dialect`` rows): :func:`variety` gives its entry, and the
config checks it against what its source declares (:mod:`arabicpeft.sources`).

Public: :data:`DIALECTS`, :data:`MSA`, :data:`POOLED`, :data:`VARIETIES`, :data:`NAMES`, :data:`Name`,
:data:`VARIETY_NAME`, :data:`REGISTRY`, :func:`get`, :func:`variety`, :func:`variety_name`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HUB_NAMESPACE = "otozz"


@dataclass(frozen=True)
class _Dialect:
    name: str
    display: str
    hub_name: str = ""  # the spelling used in the otozz repo ids ("" for the pooled set)
    train_rows: int = 0  # published sizes (approximate for train, exact for test except MSA)
    test_rows: int = 0
    members: tuple[str, ...] = ()  # for a pooled set: the dialects it concatenates

    @property
    def is_pooled(self) -> bool:
        return bool(self.members)

    @property
    def hub_train(self) -> tuple[str, ...]:
        """Hub dataset ids of the training data (several for the pooled set)."""
        return tuple(f"{_HUB_NAMESPACE}/{get(m).hub_name}_train_set" for m in self.parts)

    @property
    def hub_test(self) -> tuple[str, ...]:
        return tuple(f"{_HUB_NAMESPACE}/{get(m).hub_name}_test_set" for m in self.parts)

    @property
    def parts(self) -> tuple[str, ...]:
        """The single-variety names this set is made of (itself, unless pooled)."""
        return self.members or (self.name,)


DIALECTS = (
    "egyptian",
    "gulf",
    "iraqi",
    "levantine",
    "maghrebi",
)
MSA = "msa"  # Modern Standard Arabic: the paper's first stage, and a test set
POOLED = "all"  # the paper's dialect-pooled train set: the five dialect train sets concatenated
VARIETIES = DIALECTS + (MSA,)  # every single variety, with a test set of its own
NAMES = VARIETIES + (POOLED,)
Name = str  # a config's dialect and test sets: any declared variety (the paper's NAMES, or a source's)
VARIETY_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")  # what a variety of one's own may be called

REGISTRY: dict[str, _Dialect] = {
    "egyptian": _Dialect("egyptian", "Egyptian", "egyptian", 16_100, 4_433),
    "gulf": _Dialect("gulf", "Gulf", "gulf", 19_600, 5_408),
    "iraqi": _Dialect("iraqi", "Iraqi", "iraqi", 11_500, 3_142),
    "levantine": _Dialect("levantine", "Levantine", "levantine", 13_000, 3_562),
    "maghrebi": _Dialect("maghrebi", "Maghrebi", "maghrebi", 15_100, 4_172),
    "msa": _Dialect("msa", "MSA", "MSA", 38_800, 10_478),
    "all": _Dialect("all", "Dialect-pooled", "", 75_300, 20_717, members=DIALECTS),
}


def get(name: str) -> _Dialect:
    """The registry entry for ``name`` (case-insensitive); a clear error for an unknown name."""
    key = str(name).strip().lower()
    if key not in REGISTRY:
        raise ValueError(f"Unknown dialect {name!r}. Valid names: {', '.join(NAMES)}.")
    return REGISTRY[key]


def variety_name(value) -> str:
    """``value`` as a variety name: stripped, lower case, inner spaces as ``_`` ("Saudi Arabia" -> "saudi_arabia").
    ValueError when that is not a :data:`VARIETY_NAME` (it must start with a letter; letters, digits, ``-``, ``_``)."""
    key = "_".join(str(value).strip().lower().split())
    if not VARIETY_NAME.fullmatch(key):
        raise ValueError(f"{value!r} is not a variety name: use lower-case letters, digits, '-' or '_', starting "
                         "with a letter (e.g. sudanese).")
    return key


def variety(name) -> _Dialect:
    """The entry of variety ``name``: the registry's (the paper's six and ``all``), else a single variety of that
    name declared by a source (a recipe's config, a dialect-column value, a manifest's rows; the config checks
    that its source declares it). ValueError for a name that is not a :data:`VARIETY_NAME`."""
    key = variety_name(name)
    if key in REGISTRY:
        return REGISTRY[key]
    return _Dialect(key, key.replace("_", " ").replace("-", " ").title(), hub_name=key)
