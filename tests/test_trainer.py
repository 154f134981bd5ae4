"""The Seq2SeqTrainer of a run: mixed precision by GPU, the global batch split over processes and accumulation
passes, the token-mean loss of a whole step."""

import pytest
import torch

from arabicpeft.config import ExperimentConfig
from arabicpeft.errors import ConfigError
from arabicpeft.trainer import _mixed_precision, _token_mean_loss, per_device_batch


def test_mixed_precision_follows_the_gpu():
    assert _mixed_precision("fp32", True) == {"fp16": False, "bf16": False}
    assert _mixed_precision("fp16", True) == {"fp16": True, "bf16": False}
    assert _mixed_precision("bf16", False) == {"fp16": False, "bf16": True}
    assert _mixed_precision("int8", False) == {"fp16": True, "bf16": False}  # T4 (7.5): no native bf16
    assert _mixed_precision("nf4", True) == {"fp16": False, "bf16": True}  # Ampere and later


def test_the_global_batch_is_split_over_processes_and_accumulation():
    cfg = ExperimentConfig(batch_size=8, gradient_accumulation_steps=2)
    assert per_device_batch(cfg, 1) == 4 and per_device_batch(cfg, 2) == 2 and per_device_batch(cfg, 4) == 1
    with pytest.raises(ConfigError, match="batch_size 8 .* cannot be split evenly over 3 process"):
        per_device_batch(cfg, 3)
    with pytest.raises(ConfigError, match="multiple of 16"):
        per_device_batch(cfg, 8)


def test_the_loss_is_the_token_mean_of_the_whole_step():
    """Two halves of a batch, each normalised by the tokens of both, add up to the batch's token mean: what two
    processes or two accumulation passes compute (Whisper's own loss would average the halves' means)."""
    torch.manual_seed(0)
    logits = torch.randn(4, 5, 11)
    labels = torch.randint(0, 11, (4, 5))
    labels[0, 2:] = labels[3, 1:] = -100  # unequal label lengths: 3 + 5 tokens in one half, 5 + 1 in the other
    whole = torch.nn.functional.cross_entropy(logits.reshape(-1, 11), labels.reshape(-1), ignore_index=-100)
    tokens = labels.ne(-100).sum()
    halves = sum(_token_mean_loss({"logits": logits[i:i + 2]}, labels[i:i + 2], num_items_in_batch=tokens)
                 for i in (0, 2))
    assert halves.item() == pytest.approx(whole.item(), rel=1e-6)
    means = [_token_mean_loss({"logits": logits[i:i + 2]}, labels[i:i + 2]) for i in (0, 2)]
    assert abs(sum(means).item() / 2 - whole.item()) > 1e-3  # what a mean of means would have trained on
