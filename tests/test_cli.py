"""The command line as a new user meets it: help that teaches, one-line errors before heavy imports, and one
score table for every command that scores; the evaluate command (any model on any data, the training config
kept apart from the evaluation's)."""

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from arabicpeft import cli, commands, console
from arabicpeft import device, hub
from arabicpeft.cli import main
from arabicpeft.config import ExperimentConfig
from arabicpeft.sources import SAMPLE_DIR
from arabicpeft.model import CONFIG_FILE
from arabicpeft.results import load_runs, read_results
from arabicpeft.text import SCHEMES

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args, env_extra=None, timeout=120) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != cli._DEBUG_ENV_VAR}
    environ.update(PYTHONPATH=str(REPO), **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "arabicpeft", *map(str, args)], cwd=REPO, env=environ,
                          capture_output=True, text=True, timeout=timeout)


def subparser(name: str) -> argparse.ArgumentParser:
    parser = cli._build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


# --- help ------------------------------------------------------------------------------------------------


def test_top_level_help_says_what_it_does_and_to_start_with_demo():
    done = run_cli("--help")
    assert done.returncode == 0
    assert "Whisper" in done.stdout and "Arabic" in done.stdout
    assert "Start here:  python -m arabicpeft demo" in done.stdout


def test_every_train_option_has_help_and_its_default_from_the_config():
    options = {a.dest: a for a in subparser("train")._actions if a.option_strings and a.dest not in ("help", "rescore")}
    documented = [f for f in dataclasses.fields(ExperimentConfig) if f.name not in commands.NOT_OPTIONS]
    assert set(options) == {f.name for f in documented}
    for f in documented:
        action = options[f.name]
        assert action.help.startswith(f.metadata["help"].replace("%", "%%"))  # one source: the field's metadata
        assert "default" in action.help.lower(), f.name
        assert action.default == f.default
    assert options["max_steps"].help.endswith("(default: 5000) [at least 1]")  # the range: the field's bounds
    assert options["val_fraction"].help.endswith("(default: 0.2) [greater than 0 and less than 1]")
    assert options["model"].help.endswith(")")  # no range for text
    assert "openai/whisper-small" in options["model"].help and "whisper-base, tiny-random" in options["model"].help


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_choices_are_shown_wherever_they_appear(command):
    options = {a.dest: a for a in subparser(command)._actions}
    for name, choices in (("method", ("lora", "full")), ("precision", ("fp32", "fp16", "bf16", "int8", "nf4")),
                          ("source", ("hub", "local", "sample"))):
        if name in options:
            assert set(choices) <= set(options[name].choices), name
            assert options[name].metavar.startswith("{"), name
    text = subparser(command).format_help()
    assert "{hub,local,sample," in text and "{fp32,fp16,bf16,int8,nf4}" in text
    # varieties are open (any a source declares): --dialect takes any name and its help names the paper's
    if command == "train":
        assert options["dialect"].choices is None
        assert "egyptian, gulf, iraqi, levantine, maghrebi, msa" in options["dialect"].help


# --- one-line errors -------------------------------------------------------------------------------------


def assert_one_line_error(done: subprocess.CompletedProcess, *fragments, code=1):
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in done.stderr, done.stderr
    assert " — " in lines[0]  # what was wrong — what to do
    for fragment in fragments:
        assert fragment in lines[0]


def test_a_bad_option_value_is_one_line_with_the_choices():
    done = run_cli("train", "--method", "prefix")
    assert_one_line_error(done, "invalid choice: 'prefix'", "lora", "full", "--help", code=2)


def test_a_mistyped_local_model_path_is_reported_as_a_missing_folder(tmp_path):
    done = run_cli("train", "--model", tmp_path / "no-such-model", "--source", "sample")
    assert_one_line_error(done, f"the model folder {tmp_path / 'no-such-model'} does not exist", "whisper-base")
    assert "repo id" not in done.stderr.lower()


def test_missing_data_folder_and_missing_data_path(tmp_path):
    assert_one_line_error(run_cli("train", "--source", "local", "--data-path", tmp_path / "nope", "--model",
                                  "tiny-random"), "does not exist", "--data-path")
    assert_one_line_error(run_cli("train", "--source", "local", "--model", "tiny-random"),
                          "source='local' needs data_path")


def test_a_saved_model_path_that_is_not_one(tmp_path):
    assert_one_line_error(run_cli("evaluate", "--model-path", tmp_path, "--output-dir", tmp_path / "out"),
                          "holds no model", "'model' folder")


def test_debug_shows_the_traceback(tmp_path):
    done = run_cli("train", "--model", tmp_path / "nope", "--debug")
    assert done.returncode != 0 and "Traceback" in done.stderr
    done = run_cli("train", "--model", tmp_path / "nope", env_extra={cli._DEBUG_ENV_VAR: "1"})
    assert "Traceback" in done.stderr


# Runs each command line given as arguments (fields joined by "|") in one process, and prints, as JSON, each one's
# exit status and stderr, and whether torch was imported at the end.
_PROBE = (
    "import contextlib, io, json, sys\n"
    "from arabicpeft.cli import main\n"
    "done = []\n"
    "for argv in sys.argv[1:]:\n"
    "    err = io.StringIO()\n"
    "    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):\n"
    "        try:\n"
    "            main(argv.split('|'))\n"
    "            code = 0\n"
    "        except SystemExit as e:\n"
    "            code = e.code\n"
    "    done.append([code, err.getvalue()])\n"
    "print(json.dumps({'done': done, 'torch': 'torch' in sys.modules}))\n"
)


def probe(cases: list[str], cwd, **popen) -> tuple[list, bool]:
    """[(exit status, stderr)] of each command line in ``cases`` run by :data:`_PROBE` in one fresh process, and
    whether it imported torch."""
    done = subprocess.run([sys.executable, "-c", _PROBE, *cases], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120, **popen)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["done"], result["torch"]


def test_user_errors_come_before_the_heavy_imports(tmp_path):
    """Each mistake, for every command, is found without importing torch: the process answers within a second or
    two, not after the 10-60 s of imports a run needs (measured as 'torch was never imported', which holds on any
    machine). Each is one line that says what was wrong."""
    audio = str(next((SAMPLE_DIR / "audio").glob("*.ogg")))
    cases = {
        "train|--method|prefix": "invalid choice: 'prefix'",
        f"train|--model|{tmp_path}/nope": "does not exist",
        f"train|--source|local|--data-path|{tmp_path}/x": "does not exist",
        "train|--precision|nf4|--model|tiny-random|--source|sample": "needs a CUDA GPU",
        "train|--max-steps|0": "argument --max-steps: 0 is out of range: it must be at least 1",
        "train|--learning-rate|-1": "argument --learning-rate: -1 is out of range: it must be greater than 0",
        "train|--generation-max-length|0": "argument --generation-max-length: 0 is out of range",
        "train|--model|tiny-random|--source|sample|--data-path|d": "--data-path is not used here: it is read only "
                                                                   "with --source local",
        "train|--model|tiny-random|--source|sample|--method|full|--lora-r|8": "--lora-r is not used here: it is a LoRA",
        "demo|--max-steps|x": "invalid int value: 'x'",
        f"evaluate|--model-path|{tmp_path}|--output-dir|{tmp_path}/o": "holds no model",
        f"evaluate|--model-path|whisper-small|--output-dir|{tmp_path}/o": "the model whisper-small is not in your "
                                                                          "HF cache",
        f"evaluate|--model-path|tiny-random|--output-dir|{tmp_path}/o|--compute-type|int8":
            "--compute-type is not used here: it is an option of --backend ct2",
        f"evaluate|--model-path|tiny-random|--output-dir|{tmp_path}/o|--source|hub|--transform|noise-white-10dB":
            "transform noise-white-10dB: the hub source holds log-mel features, not waveforms",
        f"evaluate|--model-path|tiny-random|--output-dir|{tmp_path}/o|--transform|noise-white-loud":
            "transform 'noise-white-loud' is not declared",
        "study|peft_vs_full|--dialect|egyptian|--max-steps|2|--dry-run": "--dialect would be ignored there — give "
                                                                         "--dialects instead",
        "study|nope.json|--dry-run": "nope.json is neither a design",
        f"cache|--output-dir|{tmp_path}/c|--source|local|--data-path|{tmp_path}/nope": "does not exist",
        f"transcribe|{tmp_path}/missing.wav|--model-path|tiny-random|--output-dir|{tmp_path}/o":
            f"audio input not found: {tmp_path}/missing.wav",
        f"transcribe|{audio}|--model-path|tiny-random|--output-dir|{tmp_path}/o|--subtitles|srt,ass":
            "unknown subtitle format(s) ass",
        f"transcribe|{audio}|--model-path|whisper-small|--output-dir|{tmp_path}/o": "not in your HF cache",
        f"transcribe|{audio}|--model-path|tiny-random|--output-dir|{tmp_path}/o|--backend|ct2|--batch-size|4":
            "--batch-size is not used here: it is an option of --backend hf",
        f"evaluate|--model-path|tiny-random|--output-dir|{tmp_path}/o|--dialect|auto": "holds no dialect router",
        f"transcribe|{audio}|--model-path|tiny-random|--output-dir|{tmp_path}/o|--route-threshold|0.9":
            "--route-threshold is not used here: it is an option of --dialect auto",
        f"merge|--model-path|{tmp_path}/nope|--output-dir|{tmp_path}/o": "does not exist",
        f"export|--model-path|{tmp_path}/nope|--output-dir|{tmp_path}/o": "does not exist",
        f"upload|{tmp_path}/nope|--repo-id|a/b": "is not a folder",
    }
    if not device._no_gpu_driver():
        del cases["train|--precision|nf4|--model|tiny-random|--source|sample"]
    started = time.monotonic()
    done, torch_imported = probe(list(cases), tmp_path)
    elapsed = time.monotonic() - started
    assert not torch_imported
    for (argv, fragment), (code, err) in zip(cases.items(), done):
        lines = err.strip().splitlines()
        assert code in (1, 2) and len(lines) == 1, (argv, err)
        assert lines[0].startswith("error: ") and " — " in lines[0], (argv, err)
        assert fragment in lines[0], (argv, lines[0])
    print(f"{len(cases)} mistakes reported in {elapsed:.1f} s in one process (including its start)")


@pytest.mark.skipif(not device._no_gpu_driver(), reason="this machine has a GPU driver")
def test_a_gpu_precision_without_a_gpu(tmp_path):
    assert_one_line_error(run_cli("train", "--precision", "fp16", "--model", "tiny-random", "--source", "sample"),
                          "precision fp16 needs a CUDA GPU", "precision fp32")


def test_no_network_gives_the_projects_hub_advice_for_model_or_data(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "hub_reachable", lambda *a, **k: False)
    for argv, needs in ((["train"], "its data (source hub) and its model openai/whisper-small"),
                        (["train", "--source", "sample"], "its model openai/whisper-small"),
                        (["train", "--model", "whisper-base"], "its data (source hub)")):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([*argv, "--output-dir", str(tmp_path / "run")])
        err = capsys.readouterr().err
        assert exit_info.value.code == 1 and err.startswith("error: cannot reach huggingface.co")
        assert needs in err and "Session options -> Internet" in err and "whisper-base" in err
    assert not (tmp_path / "run").exists()  # nothing claimed


def test_a_bug_keeps_its_traceback(monkeypatch):
    def broken(args):
        raise KeyError("a bug")

    monkeypatch.setattr(commands, "demo", broken)
    with pytest.raises(KeyError):
        cli.main(["demo"])


# --- the score table -------------------------------------------------------------------------------------


def summary(errors, words, chars_err, chars, n):
    return {"wer": 100 * errors / words, "cer": 100 * chars_err / chars, "n_utterances": n, "ref_words": words,
            "word_errors": errors, "ref_chars": chars, "char_errors": chars_err, "empty_references": 0,
            "empty_hypotheses": 0}


def test_score_table_per_test_set_and_pooled():
    schemes = ("raw", "leaderboard", "ar_norm_v1")
    after = {"egyptian": {s: summary(5, 10, 10, 50, 4) for s in schemes},
             "gulf": {s: summary(15, 30, 30, 150, 6) for s in schemes}}
    before = {"egyptian": {s: summary(10, 10, 20, 50, 4) for s in schemes},
              "gulf": {s: summary(30, 30, 60, 150, 6) for s in schemes}}
    text = console.format_scores({"metrics": after, "metrics_before": before})
    lines = text.splitlines()
    assert lines[0].startswith("Scores before -> after training")
    assert "egyptian" in lines[1] and "WER 100.00 ->  50.00" in lines[1] and "4 utts" in lines[1]
    # pooled: (5 + 15) / (10 + 30) = 50 %, CER (10 + 30) / (50 + 150) = 20 %
    assert lines[3].split()[:4] == ["all", "test", "sets", "10"] and "WER 100.00 ->  50.00" in lines[3]
    assert "CER  40.00 ->  20.00" in lines[3]
    assert any("leaderboard" in line for line in lines) and any("ar_norm_v1" in line for line in lines)
    single = console.format_scores({"metrics": {"gulf": after["gulf"]}})
    assert single.splitlines()[0].startswith("Scores of this model") and "->" not in single


# --- the evaluate command: any model on any data, the training config kept ------------------------------


def test_evaluate_base_model_on_a_manifest_with_pooled_scores(tmp_path, capsys):
    frame = pd.read_json(SAMPLE_DIR / "test.jsonl", lines=True, dtype=False)
    subset = pd.concat([frame[frame.dialect == "egyptian"].head(2), frame[frame.dialect == "iraqi"].head(3)])
    subset = subset.assign(audio=[str(SAMPLE_DIR / a) for a in subset.audio])
    manifest = tmp_path / "mine.jsonl"
    subset.to_json(manifest, orient="records", lines=True, force_ascii=False)
    main(["evaluate", "--model-path", "tiny-random", "--data-path", str(manifest), "--test-sets",
          "egyptian,iraqi,gulf", "--output-dir", str(tmp_path / "eval"), "--batch-size", "8"])
    captured = capsys.readouterr()
    result = read_results(Path(captured.out.strip().splitlines()[-1]))
    assert result["config"] is None and result["evaluated_model"]["kind"] == "base"
    assert set(result["metrics"]) == {"egyptian", "iraqi"} and result["data"]["test"]["gulf"]["rows_used"] == 0
    raw = result["metrics_pooled"]["raw"]
    assert raw["n_utterances"] == 5
    assert raw["word_errors"] == sum(result["metrics"][s]["raw"]["word_errors"] for s in ("egyptian", "iraqi"))
    assert raw["wer"] == pytest.approx(100 * raw["word_errors"] / raw["ref_words"])
    assert re.search(r"^  all test sets +5 utts +WER", captured.out, re.M)  # the pooled row of the score table
    assert "test set gulf: no rows" in captured.out
    # the manifest's synthetic column is what makes the note, and the note names it (not "the sample data")
    assert f"note: {manifest} marks its records synthetic (its 'synthetic' column)" in captured.out
    assert "the sample data" not in captured.out


def test_evaluate_keeps_the_training_config_and_scores_through_ct2(adapter, tmp_path, capsys):
    saved = json.loads((adapter / CONFIG_FILE).read_text())
    main(["evaluate", "--model-path", str(adapter), "--source", "sample", "--test-sets", "gulf",
          "--max-test-samples", "3", "--output-dir", str(tmp_path / "hf")])
    main(["evaluate", "--model-path", str(adapter), "--source", "sample", "--test-sets", "gulf",
          "--max-test-samples", "3", "--backend", "ct2", "--compute-type", "float32", "--output-dir", str(tmp_path / "ct2")])
    hf, ct2 = read_results(tmp_path / "hf"), read_results(tmp_path / "ct2")
    assert json.loads((adapter / CONFIG_FILE).read_text()) == saved
    for r in (hf, ct2):
        assert r["config"] == saved and r["evaluation"]["test_sets"] == ["gulf"] and r["config"]["dialect"] == "egyptian"
    assert hf["evaluated_model"]["backend"] == "hf" and ct2["evaluated_model"]["backend"] == "ct2"
    assert ct2["evaluated_model"]["compute_type"] == "float32"
    assert ct2["metrics"]["gulf"]["raw"] == hf["metrics"]["gulf"]["raw"]  # same window (8 s) and weights at fp32
    rows = pd.read_csv(tmp_path / "ct2" / "utterances.csv", keep_default_na=False)
    assert len(rows) == 3 * len(SCHEMES) and set(rows.columns) == set(pd.read_csv(tmp_path / "hf" / "utterances.csv").columns)


def test_evaluate_keeps_what_the_model_was_trained_on(adapters, tmp_path):
    path = commands.evaluate(cli._build_parser().parse_args(
        ["evaluate", "--model-path", str(adapters["egyptian"]), "--dialect", "gulf", "--max-test-samples", "2",
         "--output-dir", str(tmp_path / "eval")]))
    result = json.loads(Path(path).read_text())
    assert result["config"]["dialect"] == "egyptian"  # trained on egyptian, whatever it is scored on
    assert result["evaluation"]["test_sets"] == ["gulf"] and list(result["metrics"]) == ["gulf"]
    row = load_runs(tmp_path).runs.iloc[0]
    assert (row["kind"], row["train_set"], row["eval_test_sets"]) == ("evaluation", "egyptian", "gulf")


def test_evaluate_scores_a_base_model_at_a_runs_window_and_bound(tmp_path, capsys):
    """--window and --generation-max-length (before: evaluate advised raising generation_max_length but had no
    option for it, nor for the window): tiny-random (8 s window) scored at 6 s with at most 10 tokens."""
    main(["evaluate", "--model-path", "tiny-random", "--source", "sample", "--test-sets", "gulf", "--max-test-samples",
          "2", "--window", "6", "--generation-max-length", "10", "--output-dir", str(tmp_path / "eval")])
    out = capsys.readouterr().out
    result = read_results(tmp_path / "eval")
    assert result["evaluated_model"]["window_seconds"] == 6 and result["evaluation"]["window_seconds"] == 6
    assert result["evaluation"]["window"] == 6 and result["evaluation"]["generation_max_length"] == 10
    assert result["metrics"]["gulf"]["raw"]["generation_budget_tokens"] == 10
    assert "(sample data), 6 s encoder window." in out and "note: the sample data is synthetic" in out
    assert "min(generation budget, 16 + ceil(20 x audio seconds))" == result["provenance"]["decoding"]["limit_per_utterance"]
    for window, message in (("0", "'0': give trained, full or a whole number of seconds"),
                            ("wide", "'wide': give trained, full or a whole number of seconds")):
        with pytest.raises(SystemExit) as exit_info:
            main(["evaluate", "--model-path", "tiny-random", "--window", window, "--output-dir", str(tmp_path / "x")])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "--model-path", "tiny-random", "--dialect", "gulf", "--source", "sample", "--window", "40",
              "--output-dir", str(tmp_path / "x")])
    assert capsys.readouterr().err.startswith("error: window 40: encoder_seconds=40 exceeds this model's window (8 s)")


def test_evaluate_on_a_real_manifest_scores_each_of_its_varieties_and_names_a_bad_dialect(tmp_path, capsys,
                                                                                           tiny_processor):
    from conftest import write_audio_manifest

    manifest = write_audio_manifest(tmp_path / "data", [{"seconds": 1.5, "text": "نعم", "dialect": "gulf"},
                                                        {"seconds": 2.0, "text": "لا", "dialect": "gulf"}], "test")
    main(["evaluate", "--model-path", "tiny-random", "--data-path", str(manifest), "--output-dir", str(tmp_path / "e")])
    out = capsys.readouterr().out
    assert "Scoring tiny-random (hf) on gulf (local data), 8 s encoder window." in out and "note:" not in out
    lines = manifest.read_text(encoding="utf-8").splitlines()
    # a variety of the manifest's own is a test set of its own, named as a variety
    manifest.write_text("\n".join([lines[0], lines[1].replace('"gulf"', '"Khaleeji Gulf"')]), encoding="utf-8")
    main(["evaluate", "--model-path", "tiny-random", "--data-path", str(manifest), "--output-dir", str(tmp_path / "f")])
    results = read_results(tmp_path / "f")
    assert {k: v["rows_used"] for k, v in results["data"]["test"].items()} == {"gulf": 1, "khaleeji_gulf": 1}
    from arabicpeft.data import load_test_path  # a set asked for as the data writes it is the variety's

    tests, _, _ = load_test_path(manifest, tiny_processor.tokenizer, test_sets=["Khaleeji Gulf"])
    assert {k: len(v) for k, v in tests.items()} == {"khaleeji_gulf": 1}
    capsys.readouterr()
    with pytest.raises(SystemExit):  # every set asked for is absent: one line naming the data's sets
        main(["evaluate", "--model-path", "tiny-random", "--data-path", str(manifest), "--test-sets", "egyptian",
              "--output-dir", str(tmp_path / "h")])
    assert capsys.readouterr().err.startswith(f"error: {manifest} has no rows for egyptian — name some of its sets "
                                              "with --test-sets (gulf, khaleeji_gulf)")
    manifest.write_text("\n".join([lines[0], lines[1].replace('"gulf"', '"Gulf!"')]), encoding="utf-8")
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["evaluate", "--model-path", "tiny-random", "--data-path", str(manifest), "--output-dir", str(tmp_path / "g")])
    assert capsys.readouterr().err.startswith(f"error: The manifest {manifest} has values in its 'dialect' column that "
                                              "are no variety names: 'Gulf!' (first at row 2). Use lower-case")


def test_transcribe_through_ct2_refuses_another_window_before_loading(capsys):
    clip = str(SAMPLE_DIR / "audio" / "gulf-te01-v1.ogg")
    with pytest.raises(SystemExit):
        main(["transcribe", clip, "--model-path", "whisper-base", "--backend", "ct2", "--window", "8", "--output-dir", "o"])
    assert capsys.readouterr().err.startswith("error: --window 8 with --backend ct2: faster-whisper transcribes 30 s "
                                              "windows — use --backend hf for another window")


def test_transcribe_subtitles_are_checked_while_parsing_in_any_case(capsys):
    args = cli._build_parser().parse_args(["transcribe", "x.wav", "--model-path", "tiny-random", "--output-dir", "o",
                                           "--subtitles", "SRT,Vtt"])
    assert args.subtitles == ["srt", "vtt"]
    with pytest.raises(SystemExit) as exit_info:  # before any audio is read or model loaded (x.wav does not exist)
        main(["transcribe", "x.wav", "--model-path", "tiny-random", "--output-dir", "o", "--subtitles", "srt,ass"])
    assert exit_info.value.code == 2
    assert "unknown subtitle format(s) ass: choose from srt, vtt" in capsys.readouterr().err


def _unprivileged():
    """``preexec_fn`` of a probe: root writes into any folder (CAP_DAC_OVERRIDE), so the probe runs without that
    capability (dropped from its bounding set: the program it executes never gets it)."""
    if os.geteuid() == 0:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
            if libc.prctl(24, capability, 0, 0, 0):  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_an_output_folder_that_cannot_be_written_is_refused_before_any_work(tmp_path):
    """a read-only output folder was found only after scoring (train) or decoding everything
    (transcribe), as a raw OSError. Now train, evaluate, transcribe, merge and export refuse it first, in one line,
    before torch is imported."""
    base = tmp_path
    try:
        locked = base / "locked"
        locked.mkdir(mode=0o555)
        locked.chmod(0o555)
        audio = str(next((SAMPLE_DIR / "audio").glob("*.ogg")))
        out = f"{locked}/out"
        cases = [f"train|--model|tiny-random|--source|sample|--output-dir|{out}",
                 f"evaluate|--model-path|tiny-random|--dialect|egyptian|--source|sample|--output-dir|{out}",
                 f"transcribe|{audio}|--model-path|tiny-random|--output-dir|{out}",
                 f"merge|--model-path|tiny-random|--output-dir|{out}",
                 f"export|--model-path|tiny-random|--output-dir|{out}"]
        done, torch_imported = probe(cases, base, preexec_fn=_unprivileged)
    finally:
        (base / "locked").chmod(0o755)
    assert not torch_imported
    for argv, (code, err) in zip(cases, done):
        assert code == 1 and err.strip().splitlines() == [
            f"error: the output folder {out} is not writable (its nearest existing folder {locked} is not): "
            "Permission denied — give --output-dir" + (" (output_dir)" if argv.startswith("train") else "")
            + " a folder you can write to."], (argv, err)


def test_a_second_process_into_one_output_folder_is_refused_at_once(tmp_path):
    """(transformers#28015) two train processes into one output folder both trained to the end. The
    second is refused in one line, before torch is imported."""
    from arabicpeft.run_dir import RunDir

    out = tmp_path / "run"
    with RunDir(out).hold():  # this process runs there now
        done, torch_imported = probe([f"train|--model|tiny-random|--source|sample|--output-dir|{out}"], tmp_path)
    (code, err), = done
    assert code == 1 and err.strip().splitlines() == [
        f"error: another process is running {out} now (it holds {out / '.lock'}) — wait for it to finish (a rerun "
        "then resumes or reports the finished run), or give another --output-dir (output_dir)."]
    assert not torch_imported


def test_a_failed_save_says_what_happened_in_one_line(tmp_path):
    """a full disk while saving gave a raw traceback. Here the file-size limit (RLIMIT_FSIZE, 2 MB) makes
    the first checkpoint of a full fine-tune (15 MB) fail to be written, a real failed write: one line that says
    so and what to do; the rerun without the limit finishes (the checkpoint cut short is not resumed)."""
    script = ("import resource, signal, sys\n"
              "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), no kill\n"
              "from arabicpeft.cli import main\n"
              "import arabicpeft.train  # imported before the limit\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (2_000_000, 2_000_000))\n"
              "main(sys.argv[1:])\n")
    args = ["train", "--model", "tiny-random", "--source", "sample", "--dialect", "egyptian", "--method", "full",
            "--max-steps", "2", "--eval-steps", "2", "--warmup-steps", "0", "--batch-size", "4",
            "--max-train-samples", "8", "--max-eval-samples", "2", "--max-test-samples", "2",
            "--generation-max-length", "4", "--no-evaluate-before", "--early-stopping-patience", "0",
            "--output-dir", str(tmp_path / "run")]
    environ = {k: v for k, v in os.environ.items() if k not in (cli._DEBUG_ENV_VAR, "ARABICPEFT_PROFILE")}
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=REPO, capture_output=True, text=True,
                          env={**environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}, timeout=300)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert len(errors) == 1 and errors[0].startswith("error: saving failed: ") and "File too large" in errors[0]
    assert errors[0].endswith("and rerun the same command: a train run resumes from its last complete checkpoint.")
    rerun = subprocess.run([sys.executable, "-m", "arabicpeft", *args], cwd=REPO, capture_output=True, text=True,
                           env={**environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert read_results(tmp_path / "run")["training"]["global_step"] == 2
