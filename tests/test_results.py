import json

from arabicpeft.results import EVALUATION, TRAINING, provenance, read_results, record, variant_of, write_results


def test_results_are_written_atomically_with_provenance_and_no_nan(tmp_path):
    path = write_results(tmp_path / "run", {"metrics": {"x": {"raw": {"wer": float("nan"), "cer": 1.5}}}})
    assert sorted(p.name for p in path.parent.iterdir()) == ["results.json"]  # no temporary file left
    data = json.loads(path.read_text())  # strict JSON: NaN written as null
    assert data["metrics"]["x"]["raw"] == {"wer": None, "cer": 1.5}
    assert data["schema"] == "arabicpeft.results/1"
    assert data["provenance"]["versions"]["torch"] and data["provenance"]["hardware"]["cpu_count"] >= 1
    assert read_results(path.parent) == data


def test_provenance_names_the_git_commit():
    from pathlib import Path

    commit = provenance()["git_commit"]
    if (Path(__file__).resolve().parents[1] / ".git").exists():  # a checkout (CI clones one): it must be known
        assert len(commit.split("-")[0]) == 40 and int(commit[:40], 16) >= 0


def test_one_record_shape_for_every_kind_of_run(tmp_path):
    metrics = {"gulf": {"raw": {"wer": 50.0, "generation_budget_tokens": 444}}}
    trained = record(tmp_path / "run-1", kind=TRAINING, config={"dialect": "gulf"}, data={"n_train": 8},
                     synthetic=False, metrics=metrics, metrics_pooled={"raw": {"wer": 50.0}},
                     training={"global_step": 3}, provenance={"lr_scheduler": "linear"})
    assert list(trained) == ["run_id", "kind", "config", "data", "synthetic", "metrics", "metrics_pooled",
                             "metrics_before", "utterances_before_file", "training", "provenance"]
    assert trained["run_id"] == "run-1" and trained["metrics_before"] is None
    # the generation budget is read off the scores, beside what the run adds
    assert trained["provenance"] == {"generation_budget_tokens": 444, "lr_scheduler": "linear"}
    evaluated = record(tmp_path / "eval", kind=EVALUATION, config=None, data={}, synthetic=True,
                       metrics={"gulf": {"raw": {"wer": 1.0}}}, metrics_pooled=None, evaluated_model={"kind": "base"},
                       evaluation={"window": "trained"})
    assert evaluated["evaluated_model"] == {"kind": "base"}
    assert "provenance" not in evaluated and "training" not in evaluated  # sections not given are left out
    written = read_results(write_results(tmp_path / "eval", evaluated))
    assert written["kind"] == EVALUATION and written["provenance"]["git_commit"] == provenance()["git_commit"]


def test_results_files_get_the_permissions_of_other_new_files(tmp_path):
    import pandas as pd

    from arabicpeft.run_dir import write_csv_atomic, write_json_atomic

    (tmp_path / "plain.txt").write_text("x")
    plain = (tmp_path / "plain.txt").stat().st_mode & 0o777
    assert (write_json_atomic(tmp_path / "results.json", {"a": 1}).stat().st_mode & 0o777) == plain
    assert (write_csv_atomic(tmp_path / "u.csv", pd.DataFrame({"a": [1]})).stat().st_mode & 0o777) == plain
    assert not list(tmp_path.glob(".*.tmp"))


# --- load_runs: the one results reader ------------------------------------------------------------------------


def _write(root, name, kind="training", stopped=None, **fields):
    from arabicpeft.config import ExperimentConfig

    extra = fields.pop("extra", {})
    cfg = ExperimentConfig(model="tiny-random", source="sample", output_dir=str(root / name), extra=extra, **fields)
    metrics = {"egyptian": {"raw": {"wer": 50.0, "cer": 20.0, "n_utterances": 2, "ref_words": 4, "word_errors": 2,
                                    "ref_chars": 10, "char_errors": 2}}}
    content = {"run_id": name, "config": cfg.to_dict(), "metrics": metrics, "data": {"source": "sample"},
               "efficiency": {"peak_memory": {"kind": "peak_rss", "bytes": 2**30}, "trainable_parameters": 7}}
    if kind == "training":
        content["training"] = {"global_step": stopped or 6, "stopped_by_time_budget_at_step": stopped}
    if kind == "evaluation":
        content.update(kind="evaluation", evaluated_model=str(root / "x" / "model"),
                       evaluation={"test_sets": ["egyptian"]})
    return write_results(root / name, content)


def test_load_runs_every_config_field_is_a_column_and_a_system_is_everything_but_the_seed(tmp_path):
    from dataclasses import fields

    from arabicpeft.config import ExperimentConfig
    from arabicpeft.results import load_runs

    for seed in (42, 84):
        _write(tmp_path, f"r32_{seed}", seed=seed, lora_r=32)
        _write(tmp_path, f"r8_{seed}", seed=seed, lora_r=8)  # another LoRA rank: another system, never averaged in
        _write(tmp_path, f"dora_{seed}", seed=seed, use_dora=True)
    runs = load_runs(tmp_path).runs
    assert {f.name for f in fields(ExperimentConfig)} - {"extra"} <= set(runs.columns)
    assert len(runs) == 6 and runs["system"].nunique() == 3
    assert set(runs["system"]) == {"lora_r=32 use_dora=False", "lora_r=8 use_dora=False", "lora_r=32 use_dora=True"}
    assert all(sorted(s) == [42, 84] for s in runs.groupby("system")["seed"].apply(list))
    assert runs["context"].nunique() == 1  # they differ only in the method: one comparison cell
    assert set(runs["variant"]) == {"lora fp32 r32 a64 d0.05 qv lr0.001", "lora fp32 r8 a64 d0.05 qv lr0.001",
                                    "dora fp32 r32 a64 d0.05 qv lr0.001"}
    assert (runs["peak_memory_bytes"] == 2**30).all() and (runs["kind"] == "training").all()
    assert load_runs(tmp_path / "missing").runs.empty


def test_load_runs_keeps_what_an_evaluation_evaluated_apart_from_what_was_trained(tmp_path):
    from arabicpeft.results import load_runs

    _write(tmp_path, "trained", dialect="gulf")
    _write(tmp_path, "evaluated", kind="evaluation", dialect="gulf")  # a gulf model scored on egyptian
    runs = load_runs(tmp_path)
    frame = runs.runs.set_index("run_id")
    assert frame.loc["evaluated", "kind"] == "evaluation" and frame.loc["trained", "kind"] == "training"
    assert frame.loc["evaluated", "train_set"] == "gulf" and frame.loc["evaluated", "eval_test_sets"] == "egyptian"
    assert frame.loc["evaluated", "system"] != frame.loc["trained", "system"]
    scores = runs.scores()
    assert set(scores["train_set"]) == {"gulf"} and set(scores["test_set"]) == {"egyptian"}


def test_variant_labels():
    assert variant_of({"method": "lora", "precision": "fp16", "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0,
                       "lora_targets": "qkvo"}) == "lora fp16 r8 a16 d0.0 qkvo lr0.001"
    assert variant_of({"method": "full", "precision": "fp32", "learning_rate": 3e-5}) == "full fp32 lr3e-05"
    assert variant_of({"method": "lora", "precision": "nf4", "use_dora": True, "lora_r": 32, "lora_alpha": 64,
                       "lora_dropout": 0.05, "lora_targets": "qv"}).startswith("dora nf4 r32")


# Configs of results files as arabicpeft wrote them before methods had a registry (abridged: a field left out reads
# as None in every row alike).
_OLD_CONFIGS = {
    "lora": {"method": "lora", "precision": "fp32", "lora_r": 32, "lora_alpha": 64, "lora_dropout": 0.05,
             "lora_targets": "qv", "use_dora": False},
    "dora": {"method": "lora", "precision": "nf4", "lora_r": 16, "lora_alpha": 64, "lora_dropout": 0.05,
             "lora_targets": "qkvo", "use_dora": True, "learning_rate": 5e-4},
    "full": {"method": "full", "precision": "fp32", "lora_r": 32, "lora_alpha": 64, "lora_dropout": 0.05,
             "lora_targets": "qv", "use_dora": False},
}


def test_old_results_files_read_and_label_as_before(tmp_path):
    """the variant labels and the comparison cells of files written before the methods registry are unchanged:
    the method fields (method, precision, learning rate, the LoRA settings) are the variant, not the context."""
    from arabicpeft.results import load_runs

    for name, method in _OLD_CONFIGS.items():
        config = {"dialect": "egyptian", "model": "openai/whisper-small", "source": "hub", "seed": 42,
                  "learning_rate": None, "init_adapter": None, "extra": {}, **method}
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps({
            "schema": "arabicpeft.results/1", "run_id": name, "config": config, "data": {"source": "hub"},
            "metrics": {"egyptian": {"raw": {"wer": 50.0, "cer": 20.0, "n_utterances": 2}}}}), encoding="utf-8")
    runs = load_runs(tmp_path).runs.set_index("run_id")
    assert runs["variant"].to_dict() == {"dora": "dora nf4 r16 a64 d0.05 qkvo lr0.0005",
                                         "full": "full fp32 lr1e-05", "lora": "lora fp32 r32 a64 d0.05 qv lr0.001"}
    assert runs["context"].nunique() == 1 and runs["system"].nunique() == 3


def test_unlike_runs_are_never_one_system(tmp_path):
    """a LoRA run that trains a saved adapter on is not a fresh adapter, and a run its time budget
    stopped is not a finished one: each is a system of its own, so nothing averages them together."""
    from arabicpeft.results import load_runs

    for seed in (42, 84, 168):
        _write(tmp_path, f"fresh_{seed}", seed=seed)
    _write(tmp_path, "continued_42", seed=42, init_adapter=f"{tmp_path}/msa/model")
    _write(tmp_path, "stopped_84", seed=84, stopped=1)
    runs = load_runs(tmp_path).runs.set_index("run_id")
    assert runs["system"].nunique() == 3
    assert len({runs.loc["fresh_42", "system"], runs.loc["fresh_84", "system"], runs.loc["fresh_168", "system"]}) == 1
    assert runs.loc["continued_42", "system"] == "continues_adapter=True stopped_by_time_budget=False"
    assert runs.loc["stopped_84", "system"] == "continues_adapter=False stopped_by_time_budget=True"
    assert runs.loc["continued_42", "variant"].endswith(" continued") and runs.loc["continued_42", "continues_adapter"]
    assert not runs.loc["stopped_84", "trained_to_end"] and runs.loc["fresh_84", "trained_to_end"]
    # the continued adapter is another method in the same context (a comparison may pair it); the stopped run is not
    assert runs.loc["continued_42", "context"] == runs.loc["fresh_42", "context"] != runs.loc["stopped_84", "context"]


def test_an_adapter_bank_and_a_single_dialect_run_say_what_they_are(tmp_path):
    """a bank's dialect is its adapters' dialects, not its base config's; how a pool is drawn
    (mixture, cap) is named only for a pooled train set."""
    from arabicpeft.results import load_runs

    _write(tmp_path, "bank", kind="evaluation", dialect="egyptian",
           extra={"bank": {"egyptian": "a/model", "levantine": "b/model"}})
    _write(tmp_path, "egyptian", dialect="egyptian", mixture="balanced")  # a single dialect: no pool to draw
    _write(tmp_path, "pooled", dialect="all", mixture="balanced")
    runs = load_runs(tmp_path).runs.set_index("run_id")
    assert runs.loc["bank", "dialect"] == "egyptian+levantine" and runs.loc["bank", "train_set"] == "bank"
    assert "dialect=egyptian+levantine" in runs.loc["bank", "system"]
    assert runs.loc["egyptian", ["mixture", "max_train_per_dialect"]].isna().all()
    assert "mixture" not in runs.loc["egyptian", "system"]
    assert "mixture=balanced" in runs.loc["pooled", "system"]
