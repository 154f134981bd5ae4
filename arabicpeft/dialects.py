"""The dialect registry: names, display names, hub datasets and their published sizes.

The data are the preprocessed MASC + Common Voice sets of Özyılmaz et al. (2025) on the HuggingFace hub,
``otozz/{name}_{train,test}_set`` (MSA is spelled upper-case there). Each repo has a single split named
``train``, also the test repos. ``all`` is the paper's dialect-pooled set: the five dialects, without MSA.

Public: :data:`DIALECTS`, :data:`MSA`, :data:`POOLED`, :data:`VARIETIES`, :data:`NAMES`, :data:`Name`,
:data:`REGISTRY`, :func:`get`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
Name = Literal[NAMES]  # a config's dialect and test sets (dialects.get also accepts other capitalisations)

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
