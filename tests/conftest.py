import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

# Tests never reach the hub; converted models are cached once per machine (see offline_model.cache_root).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under pytest-xdist (the README's ``-n 2``) the workers share the cores: each gets its share of threads (torch,
# the notebook kernels and the subprocesses inherit it), since every worker taking all cores oversubscribes them.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ.setdefault("OMP_NUM_THREADS",
                          str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

# Every run a test or a notebook (nbval kernels inherit the environment) makes goes to one temporary folder,
# removed at the end: nothing is written into the checkout, so every session tests the same code paths.
REPO = Path(__file__).resolve().parents[1]
OUTPUT = Path(tempfile.mkdtemp(prefix="arabicpeft-tests-"))
os.environ["ARABICPEFT_OUTPUT"] = str(OUTPUT)
_BEFORE = pytest.StashKey[set]()


def _checkout_files() -> set[str] | None:
    """Untracked and ignored files in the checkout (bytecode caches aside); None outside a git checkout."""
    try:
        listed = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"], cwd=REPO,
                                capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    # new files only ("??" untracked, "!!" ignored): edits to tracked files are the developer's, not the suite's
    return {line[3:] for line in listed.splitlines() if line[:2] in ("??", "!!") and "__pycache__/" not in line}


# Under xdist (the README's ``-n 2 --dist loadfile``) whole files go to the workers in collection order: the
# longest (measured) go first, so that the two workers finish together instead of one running them at the end.
# (xdist would otherwise reorder the files by their number of tests, which puts the few long ones last.)
LONGEST_FIRST = ("tests/test_e2e_ddp.py", "tests/test_analysis.py", "tests/test_benchmarks.py",
                 "notebooks/04_paper_figures.ipynb",
                 "tests/test_evaluate.py", "tests/test_e2e_resume.py", "notebooks/05_inference_export.ipynb",
                 "notebooks/03_statistical_analysis.ipynb", "notebooks/06_adapter_bank.ipynb", "tests/test_kaggle_build.py",
                 "tests/test_qwen3_asr_methods.py")


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist >= 3.8: --no-loadscope-reorder
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(session, config, items):
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}

    def where(item) -> int:
        try:
            return rank.get(Path(item.path).resolve().relative_to(REPO).as_posix(), len(rank))
        except ValueError:  # outside the repository
            return len(rank)

    items.sort(key=where)  # stable: the order within a file and among the others is kept


def pytest_sessionstart(session):
    session.config.stash[_BEFORE] = _checkout_files()


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(OUTPUT, ignore_errors=True)
    before, after = session.config.stash.get(_BEFORE, None), _checkout_files()
    new = sorted(after - before) if before is not None and after is not None else []
    if new:
        session.config.get_terminal_writer().line(
            f"FAILED: the test session wrote into the checkout (tests must use temporary folders): {new[:10]}",
            red=True)
        session.exitstatus = 1


SR = 16_000
# The otozz sets' label prefix <|startoftranscript|><|ar|><|transcribe|><|notimestamps|> and <|endoftext|>: the ids of
# whisper tiny ... large-v2 (tiny-random, whisper-base), as they store them. large-v3's: tests/test_large_v3.py.
PREFIX = [50258, 50272, 50359, 50363]
EOT = 50257
SOT = PREFIX[0]
GEN = 20  # tokens per transcript of the random tiny model


@pytest.fixture(scope="session")
def tiny_processor():
    from transformers import WhisperProcessor

    from arabicpeft.offline_model import resolve_model

    processor = WhisperProcessor.from_pretrained(resolve_model("tiny-random"))
    processor.tokenizer.set_prefix_tokens(language="ar", task="transcribe", predict_timestamps=False)
    return processor


def tone(seconds: float, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_audio_manifest(root: Path, rows: list[dict], split: str = "train") -> Path:
    """rows: dicts with 'seconds' (or 'file_bytes'), 'text', optional 'dialect'; writes WAVs + {split}.jsonl."""
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, row in enumerate(rows):
        name = f"{split}-{i}.wav"
        if "file_bytes" in row:
            (root / name).write_bytes(row["file_bytes"])
        else:
            sf.write(root / name, tone(row["seconds"]), row.get("rate", SR))
        lines.append({"id": f"{split}-{i}", "audio": name, "text": row["text"], **({"dialect": row["dialect"]} if "dialect" in row else {})})
    path = root / f"{split}.jsonl"
    path.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n", encoding="utf-8")
    return path


def otozz_labels(tokenizer, text: str) -> list[int]:
    """Labels exactly as the otozz hub sets store them: prefix + text tokens + <|endoftext|>."""
    return PREFIX + tokenizer.encode(text, add_special_tokens=False) + [EOT]


@pytest.fixture(scope="session")
def processor30(tiny_processor):
    """The real tokenizer with the standard 30 s extractor: the shape the otozz features have."""
    from transformers import WhisperFeatureExtractor, WhisperProcessor

    return WhisperProcessor(feature_extractor=WhisperFeatureExtractor(), tokenizer=tiny_processor.tokenizer)


def _local(tmp_path, **kw):
    from arabicpeft.config import ExperimentConfig

    return ExperimentConfig(dialect="gulf", source="local", data_path=str(tmp_path), **kw)


def dataclasses_replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)


# --- LoRA adapters on tiny-random with random non-zero weights (merging, export, the bank, evaluation) ------------
# Module-scoped: building one takes about a second; each file that uses one gets its own.


def _adapter(directory: Path, dialect: str, seed: int, model: str = "tiny-random", **fields) -> Path:
    """A LoRA adapter on ``model`` (an offline tiny model) saved by arabicpeft, with random non-zero B matrices (an
    untrained adapter is the identity, and merging it would prove nothing); ``fields``: other config fields (e.g.
    encoder_seconds)."""
    import torch

    from arabicpeft.config import ExperimentConfig
    from arabicpeft.backbones import BACKBONES
    from arabicpeft.methods import add_adapter
    from arabicpeft.model import _load_base, save_trained

    cfg = ExperimentConfig(dialect=dialect, model=model, source="sample", lora_targets="qkvo",
                           generation_max_length=GEN, max_test_samples=6, **fields)
    model, processor = _load_base(cfg)
    model = add_adapter(model, cfg, BACKBONES["whisper"].target_modules(cfg))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
    return save_trained(model, processor, cfg, directory)


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    return _adapter(tmp_path_factory.mktemp("adapter") / "model", "egyptian", 0)


@pytest.fixture(scope="module")
def adapters(tmp_path_factory):
    """Two LoRA adapters on tiny-random with random (non-zero) weights, saved as a training run saves them."""
    import torch
    from peft import LoraConfig, get_peft_model

    from arabicpeft.backbones import BACKBONES
    from arabicpeft.config import ExperimentConfig
    from arabicpeft.model import _load_base, save_trained

    root = tmp_path_factory.mktemp("adapters")
    paths = {}
    for i, dialect in enumerate(("egyptian", "levantine")):
        cfg = ExperimentConfig(model="tiny-random", source="sample", dialect=dialect, generation_max_length=12,
                               lora_r=4, lora_alpha=8, lora_targets="qkvo")
        torch.manual_seed(i)
        base, processor = _load_base(cfg)
        model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=BACKBONES["whisper"].target_modules(cfg),
                                                init_lora_weights=False))
        paths[dialect] = save_trained(model, processor, cfg, root / dialect / "model")
    return paths


# --- a ci-profile study of every design (tests/test_analysis.py runs every StudyReport section on each) ---------
# Real runs of tiny-random on the sample set through the study launcher, shrunk further (2 steps, 4 test clips per
# set): 38 runs, about 10 CPU-minutes in all (3-50 s a run, as loaded as the machine is); each design's folder is made
# once per session, when first asked for.


def _tiny_base():
    """The ci profile's config, shrunk to the least that trains, validates and scores: 2 steps of 4 clips, 4
    validation and 4 test clips per set, 6 decoded tokens."""
    from arabicpeft import profiles
    from arabicpeft.config import ExperimentConfig

    return dataclasses_replace(profiles.apply(ExperimentConfig(), "ci"), max_steps=2, eval_steps=2, batch_size=4,
                               max_train_samples=8, max_eval_samples=4, max_test_samples=4, generation_max_length=6,
                               logging_steps=1)


def design_study(name: str):
    """The small design ``name`` of every design the report must analyse (:data:`arabicpeft.designs.DESIGNS`)."""
    from arabicpeft import designs

    base = _tiny_base()
    if name == "peft_vs_full":  # two seeds: the seed-aware statistics have a spread to work with
        return designs.peft_vs_full(dataclasses_replace(base, test_sets=["egyptian", "gulf"]), dialects=["egyptian"],
                                  seeds=[42, 84])
    if name == "paper":
        return designs.paper(base, dialects=["egyptian", "all"], seeds=[42], msa_fractions=[0.5, 1.0],
                           test_sets=["egyptian", "msa"])
    if name == "mixing":
        return designs.mixing(base, seeds=[42], max_train_per_dialect=10, test_sets=["egyptian", "gulf"])
    if name == "adapter_bank":
        return designs.adapter_bank(base, dialects=["egyptian", "levantine"], seeds=[42])
    if name == "peft_methods":  # two methods x two placements + full, two seeds: 10 runs
        return designs.peft_methods(dataclasses_replace(base, test_sets=["egyptian"]), variants=("lora", "ia3"),
                                    placements=("qv", "all-linear"), dialects=["egyptian"], seeds=[42, 84])
    raise ValueError(name)


def run_design_study(name: str, root: Path) -> Path:
    """``root`` holding a finished ci-profile study of design ``name`` (``"train_evaluate"``: one training run and
    an ``evaluate`` of its model, as a user's folder would hold them)."""
    from arabicpeft import cli, study

    if name == "train_evaluate":
        from arabicpeft.train import run

        cfg = dataclasses_replace(_tiny_base(), test_sets=["egyptian", "gulf"], output_dir=str(root / "train"))
        run(cfg, log=lambda m: None)
        cli.main(["evaluate", "--model-path", str(root / "train" / "model"), "--output-dir", str(root / "evaluate"),
                  "--test-sets", "egyptian,gulf", "--max-test-samples", "4"])
        return root
    study.run_study(design_study(name), root=root, log=lambda m: None)
    return root


@pytest.fixture(scope="session")
def design_root(tmp_path_factory):
    """``design_root(name)``: the folder of a finished ci-profile study of design ``name`` (made once)."""
    made = {}

    def get(name: str) -> Path:
        if name not in made:
            made[name] = run_design_study(name, tmp_path_factory.mktemp(name))
        return made[name]

    return get
