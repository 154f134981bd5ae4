"""The backbones registry: a model family is one class and one entry, read from the model's config.json. A family
registered here alone (a Whisper under another model_type) is loaded, trained through train.run, evaluated and
transcribed; the family of folders, adapters, runs and offline names; what an unknown family is told."""

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import dataclasses_replace, _tiny_base

from arabicpeft import backbones
from arabicpeft.backbones import BACKBONES, Whisper, family_of
from arabicpeft.config import ExperimentConfig
from arabicpeft.offline_model import resolve_model

PACKAGE = Path(__file__).resolve().parents[1] / "arabicpeft"


def _tiny_random_as(folder: Path, model_type: str) -> Path:
    """A copy of tiny-random whose config.json names ``model_type``."""
    shutil.copytree(resolve_model("tiny-random"), folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    (folder / "config.json").write_text(json.dumps({**config, "model_type": model_type}), encoding="utf-8")
    return folder


class Renamed(Whisper):
    """Whisper under another model_type, with its own presets, no export, and a count of its decodes."""

    family = "whisper_renamed"
    exports = ()
    lora_targets = {"qv": ["q_proj"]}  # not Whisper's: the adapter shows whose presets were used

    def __init__(self):
        self.generated = 0

    def generate(self, model, inputs, max_new_tokens, options, **kwargs):
        self.generated += len(next(iter(inputs.values())))
        return super().generate(model, inputs, max_new_tokens, options, **kwargs)


def test_lora_target_presets_and_custom_lists():
    whisper = BACKBONES["whisper"]
    assert whisper.target_modules(ExperimentConfig(lora_targets="qkvo")) == ["q_proj", "k_proj", "v_proj", "out_proj"]
    assert whisper.target_modules(ExperimentConfig(lora_targets="fc1, fc2")) == ["fc1", "fc2"]
    assert "fc1" in whisper.target_modules(ExperimentConfig(lora_targets="all-linear"))


def test_the_family_of_a_folder_an_adapter_a_run_and_an_offline_name(adapter):
    folder = resolve_model("tiny-random")  # an offline name resolves to its folder first
    assert family_of(folder) == "whisper" and backbones.get(folder) is BACKBONES["whisper"]
    assert family_of(adapter) == "whisper"  # an adapter: its base's
    assert family_of(adapter.parent) == "whisper"  # a run folder: its model/
    assert backbones.get("whisper") is BACKBONES["whisper"]
    from transformers import AutoConfig

    assert BACKBONES["whisper"].feature_size(AutoConfig.from_pretrained(folder)) == 80  # mel bins


def test_an_unknown_model_type_is_refused_naming_the_supported_families(tmp_path):
    folder = _tiny_random_as(tmp_path / "w2v", "wav2vec2")
    message = f"{folder} is a 'wav2vec2' model (the model_type of its config.json), which arabicpeft does not " \
              "support: use a model of the family whisper, qwen3_asr."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        family_of(folder)
    from arabicpeft.model import load_model

    with pytest.raises(ValueError, match=re.escape(message)):
        load_model(folder)


def test_a_family_registered_in_the_test_alone_trains_evaluates_and_transcribes(tmp_path, monkeypatch):
    from arabicpeft import export
    from arabicpeft.sources import SAMPLE_DIR
    from arabicpeft.model import load_model
    from arabicpeft.results import read_results
    from arabicpeft.train import run
    from arabicpeft.transcribe import collect_audio, transcribe_files

    family = Renamed()
    monkeypatch.setitem(BACKBONES, "whisper_renamed", family)
    folder = _tiny_random_as(tmp_path / "renamed", "whisper_renamed")
    assert family_of(folder) == "whisper_renamed"

    cfg = dataclasses_replace(_tiny_base(), model=str(folder), lora_targets="qv", test_sets=["egyptian"],
                              generation_max_length=20,  # every reference fits: no budget warning
                              output_dir=str(tmp_path / "run"))
    results = read_results(run(cfg, log=lambda m: None))
    assert results["training"]["global_step"] == 2
    adapter_config = json.loads((tmp_path / "run" / "model" / "adapter_config.json").read_text())
    assert set(adapter_config["target_modules"]) == {"q_proj"}  # the registered family's preset
    assert results["metrics"]["egyptian"]["raw"]["n_utterances"] == 4
    decoded = family.generated
    assert decoded >= 8  # the test set scored before and after training, through the family's generate

    loaded = load_model(tmp_path / "run")
    assert loaded.kind == "adapter" and backbones.of(loaded.model) is family
    clips = collect_audio([sorted((SAMPLE_DIR / "audio").glob("egyptian-te*.ogg"))[0]])
    [transcript] = transcribe_files(loaded, clips, max_new_tokens=6, progress=False)
    assert transcript.segments and family.generated == decoded + 1

    with pytest.raises(ValueError, match="^CTranslate2 export supports whisper; whisper_renamed does not.$"):
        export.export_ct2(tmp_path / "run", tmp_path / "ct2")
    assert not (tmp_path / "ct2").exists()  # refused before anything loads or is written


def test_whisper_classes_are_named_only_in_the_whisper_family():
    names = re.compile(r"Whisper(ForConditionalGeneration|Processor|FeatureExtractor|Config|Tokenizer)\b")
    found = [f"{path.name}:{n}" for path in sorted(PACKAGE.glob("*.py")) if path.name != "whisper.py"
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1) if names.search(line)]
    assert not found
