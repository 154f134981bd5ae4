"""The adapter bank: named adapters on one base, an adapter per utterance (adapters disabled == base), its
evaluation; real tiny models."""

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import dataclasses_replace

from arabicpeft.config import ExperimentConfig
from arabicpeft.results import load_runs


def test_adapter_bank_per_utterance_adapters_and_disabled_equals_base(adapters):
    import datasets

    from arabicpeft.bank import AdapterBank
    from arabicpeft.data import load_test_sets
    from arabicpeft.evaluate import transcribe
    from arabicpeft.model import _load_base

    loaded = AdapterBank(adapters).loaded
    model, processor, cfg = loaded.model, loaded.processor, loaded.config
    assert loaded.kind == "bank" and loaded.adapters == {d: str(p) for d, p in adapters.items()}
    assert set(model.peft_config) == {"egyptian", "levantine"}
    tests, _, _ = load_test_sets(dataclasses_replace(cfg, test_sets=["egyptian", "levantine"], max_test_samples=3),
                                 processor.tokenizer)
    mixed = datasets.concatenate_datasets([tests["egyptian"], tests["levantine"]])
    names = ["egyptian", "levantine", "egyptian", "levantine", "__base__", "egyptian"]
    _, hyps = transcribe(model, processor, mixed, batch_size=6, adapter_names=names)  # one generate call
    alone = {}
    for name in ("egyptian", "levantine"):
        model.set_adapter(name)
        alone[name] = transcribe(model, processor, mixed, batch_size=6)[1]
    with model.disable_adapter():
        disabled = transcribe(model, processor, mixed, batch_size=6)[1]
    base, base_processor = _load_base(cfg)
    plain = transcribe(base, base_processor, mixed, batch_size=6)[1]
    assert disabled == plain  # the adapters disabled give exactly the base model's transcripts
    expected = [plain[i] if n == "__base__" else alone[n][i] for i, n in enumerate(names)]
    assert hyps == expected
    assert alone["egyptian"] != plain  # the adapters do change the output (so the test can fail)
    with pytest.raises(ValueError, match="one per record"):
        transcribe(model, processor, mixed, adapter_names=names[:2])


def test_evaluate_bank_writes_an_evaluation_that_load_runs_reads(adapters, tmp_path, monkeypatch):
    from test_transcribe import refuse_transformers_suppression

    from arabicpeft.bank import AdapterBank

    refuse_transformers_suppression(monkeypatch)  # the bank decodes with the precomputed suppression

    cfg = ExperimentConfig(model="tiny-random", source="sample", test_sets=["egyptian", "gulf", "levantine"],
                           max_test_samples=2, eval_batch_size=4, extra={"study": "s", "stage": "bank"})
    path = AdapterBank(adapters).evaluate(cfg, tmp_path / "bank")
    result = json.loads(path.read_text())
    assert result["kind"] == "evaluation" and list(result["metrics"]) == ["egyptian", "levantine"]
    assert result["evaluation"]["not_in_bank"] == ["gulf"]
    assert result["efficiency"]["weights_bytes"] == sum(result["efficiency"]["adapters_bytes"].values()) > 0
    # the one record shape: pooled scores over the bank's test sets, the decoding used
    pooled = result["metrics_pooled"]["raw"]
    assert pooled["n_utterances"] == 4 and pooled["word_errors"] == sum(
        m["raw"]["word_errors"] for m in result["metrics"].values())
    assert result["provenance"]["decoding"]["sorted_by_duration"] is True
    runs = load_runs(tmp_path)
    row = runs.runs.iloc[0]
    assert (row["kind"], row["train_set"], row["stage"]) == ("evaluation", "bank", "bank")
    scores = runs.scores()
    assert set(scores["scored"]) == {"trained", "start"} and (scores["n_utterances"] == 2).all()


def test_bank_comparison_has_the_base_the_bank_and_the_alternatives(adapters, tmp_path):
    from arabicpeft import analysis
    from arabicpeft.bank import AdapterBank

    cfg = ExperimentConfig(model="tiny-random", source="sample", test_sets=["egyptian", "levantine"],
                           max_test_samples=2, eval_batch_size=4, extra={"study": "s", "stage": "bank"})
    AdapterBank(adapters).evaluate(cfg, tmp_path / "bank")
    table = analysis.bank_comparison(load_runs(tmp_path).utterances(), n_boot=200)
    assert set(table["role"]) == {"base", "adapter bank"} and len(table) == 4  # 2 roles x 2 test sets
    result = json.loads((tmp_path / "bank" / "results.json").read_text())
    base = table[table["role"] == "base"].set_index("test_set")["wer"]
    assert base.to_dict() == pytest.approx({t: m["raw"]["wer"] for t, m in result["metrics_before"].items()})


def test_bank_cost_summary_and_compare_on_dialect(adapters, tmp_path):
    from arabicpeft.bank import AdapterBank, _compare_adapters

    cfg = ExperimentConfig(model="tiny-random", source="sample", test_sets=["egyptian", "levantine"],
                           max_test_samples=2, eval_batch_size=4, extra={"study": "s", "stage": "bank"})
    with pytest.raises(ValueError, match="no evaluation yet"):
        AdapterBank(adapters).cost_summary()
    result = json.loads(AdapterBank(adapters).evaluate(cfg, tmp_path / "bank").read_text())["efficiency"]
    studied = AdapterBank.from_study(tmp_path, cfg.seed)
    assert studied.adapters == {d: Path(p) for d, p in adapters.items()}
    text = studied.cost_summary()
    assert text.startswith(f"Bank of 2 adapters: {result['weights_bytes'] / 2**20:.2f} MiB of adapter weights on disk")
    base = result["total_parameters"] - result["adapter_parameters"]
    assert f"({result['adapter_parameters']:,} adapter parameters on a {base:,}-parameter base)" in text
    assert text.endswith(f"took {result['decode_wall_time_s']:.1f} s.")
    with pytest.raises(FileNotFoundError, match="seed 7"):
        AdapterBank.from_study(tmp_path, 7)
    table = studied.compare_on_dialect("levantine", 2)
    assert [c for c in table.columns if c.endswith("hypothesis")] == [
        "levantine: hypothesis", "egyptian: hypothesis", "__base__: hypothesis"]
    assert len(table) == 3 and table["utt_index"].iloc[-1] == "corpus WER (%)"  # 2 utterances and the corpus row
    from arabicpeft.data import load_test_sets

    model, processor = studied.loaded.model, studied.loaded.processor
    tests, _, _ = load_test_sets(dataclasses_replace(studied.loaded.config, test_sets=["levantine"], max_test_samples=2),
                                 processor.tokenizer)
    by_hand = _compare_adapters(model, processor, tests["levantine"], ["levantine", "egyptian", "__base__"])
    pd.testing.assert_frame_equal(table, by_hand)
    with pytest.raises(ValueError, match="no adapter for 'gulf': choose one of egyptian, levantine"):
        studied.compare_on_dialect("gulf", 2)


def test_compare_on_dialect_needs_at_least_one_utterance(adapters):
    from arabicpeft.bank import AdapterBank

    with pytest.raises(ValueError, match="needs n_utterances of at least 1, got 0: give how many test utterances"):
        AdapterBank(adapters).compare_on_dialect("egyptian", 0)
