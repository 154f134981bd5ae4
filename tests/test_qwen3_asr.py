"""Qwen3-ASR as a backbone, end to end on the random-weight tiny model (``tiny-random-qwen3-asr``): its prompt and
label masking, LoRA and full runs (resume, time budget), reload, evaluation under every normalizer,
transcription, merge, the adapter bank, adapter placement."""

import json

import datasets
import numpy as np
import pytest
import torch
from conftest import dataclasses_replace

from arabicpeft import backbones, placement
from arabicpeft.config import ExperimentConfig
from arabicpeft.results import read_results
from arabicpeft.sources import SAMPLE_DIR
from arabicpeft.text import SCHEMES

TINY = "tiny-random-qwen3-asr"
GEN = 6


def _cfg(tmp, **kw) -> ExperimentConfig:
    base = dict(model=TINY, source="sample", dialect="egyptian", method="lora", max_steps=2, warmup_steps=0,
                eval_steps=2, batch_size=4, max_train_samples=8, max_eval_samples=4, max_test_samples=4,
                generation_max_length=GEN, early_stopping_patience=0, logging_steps=1, lora_targets="qkvo",
                evaluate_before=False, output_dir=str(tmp))
    return ExperimentConfig(**{**base, **kw})


def _records(n: int = 3) -> list[dict]:
    lines = (SAMPLE_DIR / "test.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    return [{"audio": str(SAMPLE_DIR / r["audio"]), "text": r["text"]} for r in map(json.loads, lines)]


@pytest.fixture(scope="module")
def processor():
    from arabicpeft.model import load_processor

    return load_processor(TINY)


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    from arabicpeft.train import run

    out = tmp_path_factory.mktemp("qwen-lora") / "run"
    return out, read_results(run(_cfg(out), log=lambda m: None))


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """Full fine-tuning stopped by its time budget after step 1, then resumed to step 2."""
    from arabicpeft.train import run

    out = tmp_path_factory.mktemp("qwen-full") / "run"
    first = read_results(run(_cfg(out, method="full", time_budget_s=1e-6), log=lambda m: None))
    return out, first, read_results(run(_cfg(out, method="full"), log=lambda m: None))


def test_the_family_is_read_from_the_config(processor):
    from arabicpeft.offline_model import resolve_model

    assert backbones.family_of(resolve_model(TINY)) == "qwen3_asr"
    assert isinstance(backbones.get(resolve_model(TINY)), type(backbones.BACKBONES["qwen3_asr"]))
    assert backbones.BACKBONES["qwen3_asr"].exports == ()  # no CTranslate2


def test_labels_hold_the_transcript_only_and_the_prompt_forces_arabic(processor):
    records = _records()
    qwen = backbones.BACKBONES["qwen3_asr"]
    batch = qwen.collator(processor, training=True)(records)
    tok = processor.tokenizer
    for row, record in enumerate(records):
        labels = batch["labels"][row]
        kept = labels[labels != -100]
        assert tok.decode(kept, skip_special_tokens=False) == record["text"] + "<|im_end|>"
        start = int((labels != -100).int().argmax())
        assert (batch["input_ids"][row, start:start + len(kept)] == kept).all()  # the transcript follows the prompt
        prompt = tok.decode(batch["input_ids"][row, :start], skip_special_tokens=False)
        assert prompt.endswith("<|im_start|>assistant\nlanguage Arabic<asr_text>")
        n_audio = int((batch["input_ids"][row, :start] == processor.audio_token_id).sum())
        assert n_audio > 0 and (labels[:start] == -100).all()  # audio and prompt positions masked
    evaluation = qwen.collator(processor)(records)  # what generate gets: the prompt alone, left-padded
    assert torch.equal(qwen.prompt_part(processor, batch)["input_ids"], evaluation["input_ids"])
    refs = tok.batch_decode(evaluation["labels"].masked_fill(evaluation["labels"] == -100, tok.pad_token_id),
                            skip_special_tokens=True)
    assert refs == [r["text"] for r in records]


def test_validation_decodes_from_the_prompt_alone(tmp_path):
    """The Trainer's validation step predicts what evaluation decodes (the prompt without the transcript that
    follows it in a training batch), and its loss is the training batch's."""
    from transformers import Seq2SeqTrainingArguments

    from arabicpeft.model import _load_base
    from arabicpeft.trainer import _Trainer

    model, proc = _load_base(ExperimentConfig(model=TINY, source="sample", generation_max_length=GEN))
    qwen, records = backbones.of(model), _records(2)
    trainer = _Trainer(model=model, processing_class=proc, args=Seq2SeqTrainingArguments(
        output_dir=str(tmp_path), predict_with_generate=True, report_to=[], use_cpu=True))
    loss, ids, labels = trainer.prediction_step(model, qwen.collator(proc, training=True)(records), False)
    prompt = {k: v for k, v in qwen.collator(proc)(records).items() if k != "labels"}
    with torch.no_grad():
        expected = qwen.generate(model, prompt, GEN, qwen.decoding_options(model, proc))
    assert torch.equal(ids, expected) and ids.shape[1] <= GEN and float(loss) > 0


def test_features_records_are_refused_in_one_line(processor):
    from arabicpeft import kaggle
    from arabicpeft.errors import ConfigError

    with pytest.raises(ValueError, match="Qwen3-ASR trains on audio records"):
        backbones.BACKBONES["qwen3_asr"].collator(processor)([{"input_features": [[0.0]], "labels": [1]}])
    # and before anything loads: the preflight reads the mel bins off its config.json (nested: audio_config)
    with pytest.raises(ConfigError, match=r"source hub holds 80-bin log-mel features, but tiny-random-qwen3-asr takes "
                                          r"128 mel bins — train it on audio"):
        kaggle.check_model_fits_source(ExperimentConfig(model=TINY, source="hub", dialect="egyptian"))


def test_adapter_placement_puts_lora_on_one_tower_only():
    from peft import LoraConfig, get_peft_model

    from arabicpeft.model import _load_base

    qwen, whisper = backbones.BACKBONES["qwen3_asr"], backbones.BACKBONES["whisper"]
    cfg = ExperimentConfig(model=TINY, source="sample", lora_targets="qv")
    assert whisper.target_modules(cfg) == ["q_proj", "v_proj"]  # both: the names, as before placement existed
    base, _ = _load_base(cfg)
    towers = {}
    for where in ("encoder", "decoder", "both"):
        targets = qwen.target_modules(dataclasses_replace(cfg, adapter_placement=where))
        model = get_peft_model(base, LoraConfig(r=2, target_modules=targets))
        wrapped = {n.split(".lora_A")[0] for n, _ in model.named_parameters() if ".lora_A" in n}
        towers[where] = {"audio_tower" if ".audio_tower." in n else "language_model" for n in wrapped}
        assert all(n.endswith(("q_proj", "v_proj")) for n in wrapped) and len(wrapped) == 4 * (where == "both") + 4
        base = model.unload()
    assert towers == {"encoder": {"audio_tower"}, "decoder": {"language_model"},
                      "both": {"audio_tower", "language_model"}}

    class OneTower:
        family, towers, lora_targets = "x", {"decoder": "model.layers"}, {}

    with pytest.raises(ValueError, match="the x family has no such tower; choose one of both, decoder"):
        placement.target_modules(OneTower(), dataclasses_replace(cfg, adapter_placement="encoder"))


def test_lora_run_trains_and_scores_under_every_normalizer(lora_run):
    out, result = lora_run
    assert result["training"]["global_step"] == 2
    losses = [h["loss"] for h in result["training"]["log_history"] if "loss" in h]
    assert len(losses) == 2 and all(loss > 0 for loss in losses)
    metrics = result["metrics"]["egyptian"]
    assert set(metrics) == set(SCHEMES)
    assert all(m["n_utterances"] == 4 and m["ref_words"] > 0 for m in metrics.values())
    assert (out / "model" / "adapter_config.json").is_file()
    assert result["config"]["adapter_placement"] == "both"


def test_evaluate_reloads_the_adapter_and_reproduces_the_run_scores(lora_run, tmp_path):
    from arabicpeft.cli import main

    out, result = lora_run
    main(["evaluate", "--model-path", str(out / "model"), "--output-dir", str(tmp_path / "ev"),
          "--test-sets", "egyptian", "--max-test-samples", "4"])
    again = read_results(tmp_path / "ev")
    for scheme in SCHEMES:
        assert again["metrics"]["egyptian"][scheme]["word_errors"] == result["metrics"]["egyptian"][scheme][
            "word_errors"]


def test_full_run_stops_on_its_time_budget_and_resumes(full_run):
    out, first, second = full_run
    assert first["training"]["stopped_by_time_budget_at_step"] == 1 == first["training"]["global_step"]
    assert second["training"]["resumed_from"] and second["training"]["global_step"] == 2
    assert (out / "model" / "model.safetensors").is_file()
    assert set(second["metrics"]["egyptian"]) == set(SCHEMES)


def _adapters(root, placement: str = "both") -> dict:
    """Two LoRA adapters on the tiny Qwen3-ASR with random non-zero weights, saved as a run saves them."""
    from peft import LoraConfig, get_peft_model

    from arabicpeft.model import _load_base, save_trained

    paths = {}
    for i, dialect in enumerate(("egyptian", "levantine")):
        cfg = ExperimentConfig(model=TINY, source="sample", dialect=dialect, generation_max_length=GEN, lora_r=4,
                               lora_alpha=8, lora_targets="qkvo", encoder_seconds=8, adapter_placement=placement)
        torch.manual_seed(i)
        base, processor = _load_base(cfg)
        model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, init_lora_weights=False,
                                                target_modules=backbones.of(base).target_modules(cfg)))
        paths[dialect] = save_trained(model, processor, cfg, root / dialect / "model")
    return paths


@pytest.fixture(scope="module")
def qwen_adapters(tmp_path_factory):
    return _adapters(tmp_path_factory.mktemp("qwen-adapters"))


def test_merge_equals_unmerged_at_fp32(qwen_adapters, tmp_path):
    from transformers import AutoProcessor, Qwen3ASRForConditionalGeneration

    from arabicpeft import export
    from arabicpeft.evaluate import transcribe
    from arabicpeft.model import load_model

    merged = export.merge(qwen_adapters["egyptian"], tmp_path / "merged")
    unmerged = load_model(qwen_adapters["egyptian"], full_window=True)
    plain = Qwen3ASRForConditionalGeneration.from_pretrained(merged).eval()  # no peft, no arabicpeft
    plain_processor = AutoProcessor.from_pretrained(merged)
    tests = datasets.Dataset.from_list(_records(4))
    with_adapter = transcribe(unmerged.model, unmerged.processor, tests, max_new_tokens=GEN)[1]
    assert transcribe(plain, plain_processor, tests, max_new_tokens=GEN)[1] == with_adapter
    base = load_model(TINY)
    assert transcribe(base.model, base.processor, tests, max_new_tokens=GEN)[1] != with_adapter
    with pytest.raises(ValueError, match="CTranslate2 export supports whisper; qwen3_asr does not"):
        export.export_ct2(merged, tmp_path / "ct2")


def test_transcribe_files_cuts_long_audio_into_windows(lora_run, tmp_path):
    from arabicpeft.model import load_model
    from arabicpeft.transcribe import concatenate_clips, sample_clips, transcribe_files

    out, _ = lora_run
    loaded = load_model(out / "model")
    assert loaded.window_seconds == 8  # trained on the sample set's 8 s window
    long = concatenate_clips(sample_clips("egyptian"), tmp_path / "long.wav", repeat=2)
    [transcript] = transcribe_files(loaded, [{"path": str(long)}], max_new_tokens=GEN, progress=False)
    assert len(transcript.segments) > 1 and all(s["end"] - s["start"] <= 8 for s in transcript.segments)


def _bank_hypotheses(bank, names):
    from arabicpeft.evaluate import transcribe

    model, processor = bank.loaded.model, bank.loaded.processor
    tests = datasets.Dataset.from_list(_records(len(names)))
    alone = {}
    for name in ("egyptian", "levantine"):
        model.set_adapter(name)
        alone[name] = transcribe(model, processor, tests, batch_size=4, max_new_tokens=GEN)[1]
    with model.disable_adapter():
        plain = transcribe(model, processor, tests, batch_size=4, max_new_tokens=GEN)[1]
    assert alone["egyptian"] != plain  # the adapters change the output (so the tests can fail)
    expected = [plain[i] if n == "__base__" else alone[n][i] for i, n in enumerate(names)]
    return model, processor, tests, expected


def test_bank_of_decoder_adapters_decodes_each_utterance_with_its_own(tmp_path):
    from arabicpeft.bank import AdapterBank
    from arabicpeft.evaluate import transcribe

    bank = AdapterBank(_adapters(tmp_path, placement="decoder"))
    names = ["egyptian", "levantine", "__base__", "egyptian"]
    model, processor, tests, expected = _bank_hypotheses(bank, names)
    assert backbones.of(model).mixes_adapters(model)
    assert transcribe(model, processor, tests, batch_size=4, adapter_names=names, max_new_tokens=GEN)[1] == expected


def test_a_bank_routes_itself_on_the_audio_towers_states(tmp_path):
    """The dialect identifier on Qwen3-ASR: the audio tower packs a batch's frames into one sequence; split back per
    clip, a clip's pooled states are the same in a batch of others as alone, and a routed mixed batch decodes each
    utterance with the adapter it was routed to."""
    from arabicpeft.bank import AdapterBank
    from arabicpeft.evaluate import transcribe
    from arabicpeft.routing import dataset_states

    bank = AdapterBank(_adapters(tmp_path, placement="decoder"))
    router = bank.train_router(max_per_dialect=4, out=tmp_path / "router.json")
    assert router.classes == ["egyptian", "levantine"] and router.trained_on["utterances"] == {
        "egyptian": 4, "levantine": 4}
    model, processor = bank.loaded.model, bank.loaded.processor
    tests = datasets.Dataset.from_list(_records(4))  # clips of different lengths in one batch
    together = dataset_states(model, processor, tests, batch_size=4)
    alone = np.concatenate([dataset_states(model, processor, tests.select([i]), batch_size=1) for i in range(4)])
    assert together.shape == (4, model.config.audio_config.d_model) and np.allclose(together, alone, atol=1e-5)
    routes = bank.route(tests, threshold=0.0)
    assert set(routes["adapter"]) <= {"egyptian", "levantine"}
    hyps = transcribe(model, processor, tests, batch_size=4, adapter_names=routes["adapter"], max_new_tokens=GEN)[1]
    for i, name in enumerate(routes["adapter"]):
        model.set_adapter(name)
        assert transcribe(model, processor, tests.select([i]), batch_size=1, max_new_tokens=GEN)[1] == [hyps[i]]


def test_bank_with_audio_tower_adapters_refuses_mixing_and_decodes_adapter_by_adapter(qwen_adapters, tmp_path):
    from arabicpeft.bank import AdapterBank
    from arabicpeft.evaluate import transcribe

    bank = AdapterBank(qwen_adapters)
    names = ["egyptian", "levantine", "__base__", "egyptian"]
    model, processor, tests, _ = _bank_hypotheses(bank, names)
    assert not backbones.of(model).mixes_adapters(model)
    with pytest.raises(ValueError, match="audio tower cannot be chosen per utterance"):
        transcribe(model, processor, tests, batch_size=4, adapter_names=names, max_new_tokens=GEN)
    cfg = ExperimentConfig(model=TINY, source="sample", test_sets=["egyptian", "levantine"], max_test_samples=2,
                           eval_batch_size=4, generation_max_length=GEN)
    result = read_results(bank.evaluate(cfg, tmp_path / "bank"))
    assert result["evaluation"]["batches"].startswith("one adapter at a time")
    assert set(result["metrics"]) == {"egyptian", "levantine"}
    assert all(m["raw"]["n_utterances"] == 2 for m in result["metrics"].values())
    assert result["provenance"]["model_family"] == "qwen3_asr"
    side_by_side = bank.compare_on_dialect("egyptian", 2)  # notebook 06's view: own adapter, another, the base
    assert list(side_by_side["utt_index"]) == [0, 1, "corpus WER (%)"]
    assert {"egyptian: hypothesis", "levantine: hypothesis", "__base__: hypothesis"} <= set(side_by_side.columns)


def test_published_sizes_build_from_their_configs(tmp_path):
    from arabicpeft import qwen3_asr

    assert set(qwen3_asr.ARCHITECTURES) == {"0.6B", "1.7B", "tiny"}
    with pytest.raises(ValueError, match="unknown Qwen3-ASR size '3B'; choose one of 0.6B, 1.7B, tiny"):
        qwen3_asr.build(tmp_path, "3B")


def test_backbones_preset_refuses_features_and_its_ci_version_mixes_families(tmp_path):
    from conftest import _tiny_base

    from arabicpeft import designs, study
    from arabicpeft.results import load_runs

    with pytest.raises(ValueError, match="cannot read the hub source's 80-mel features"):
        designs.design("backbones", ExperimentConfig())
    design = designs.design("backbones", dataclasses_replace(_tiny_base(), test_sets=["egyptian"], max_eval_samples=2,
                                                             max_test_samples=2))
    planned = design.plan()
    assert len(planned) == 2 * 3  # 2 tiny models (one per family) x LoRA decoder / LoRA both / full
    study.run_study(design, root=tmp_path, log=lambda m: None)
    runs = load_runs(tmp_path).runs
    assert sorted(zip(runs["family"], runs["model"], runs["adapter_placement"], runs["method"])) == sorted(
        (family, model, placement, method) for family, model in (("whisper", "tiny-random"),
                                                                 ("qwen3_asr", TINY))
        for placement, method in (("decoder", "lora"), ("both", "lora"), ("both", "full")))
    assert runs["variant"].str.endswith("on decoder").sum() == 0  # the learning rate ends the label
    assert runs["variant"].str.contains(" on decoder ").sum() == 2


def test_the_inference_table_times_the_audio_encoder_of_either_family():
    from arabicpeft.data import load_test_sets
    from arabicpeft.inference import _encoder_seconds
    from arabicpeft.model import load_model

    for reference in ("tiny-random", TINY):  # Whisper's encoder; Qwen3-ASR's audio tower (with the frames' mask)
        loaded = load_model(reference)
        tests, _, _ = load_test_sets(ExperimentConfig(model=reference, source="sample", test_sets=["egyptian"],
                                                      max_test_samples=2), loaded.processor.tokenizer)
        assert _encoder_seconds(loaded.model, loaded.processor, tests["egyptian"], 2) > 0
