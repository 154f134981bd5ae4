"""The dialect registry: names, the hub sets, the pooled set's parts."""

import pytest

from arabicpeft import dialects
from arabicpeft.config import ExperimentConfig


def test_registry():
    assert dialects.get("all").parts == ("egyptian", "gulf", "iraqi", "levantine", "maghrebi")
    assert "msa" not in dialects.get("all").parts
    assert dialects.get("MSA").hub_train == ("otozz/MSA_train_set",)
    assert dialects.get("egyptian").hub_test == ("otozz/egyptian_test_set",)
    assert dialects.get("gulf").test_rows == 5408
    with pytest.raises(ValueError, match="Unknown dialect 'sudanese'. Valid names: egyptian, gulf, iraqi, "
                                         "levantine, maghrebi, msa, all"):
        dialects.get("sudanese")
    with pytest.raises(ValueError, match="Unknown dialect"):
        ExperimentConfig(dialect="klingon")
