"""The study launcher: designs as data, planning, skip/resume/failure bookkeeping, the manifest, the CLI; merging
a LoRA start into the base of the next stage. (The adapter bank's tests are in test_bank.py.)"""

import copy
import json
from pathlib import Path

import pytest
from conftest import dataclasses_replace

from arabicpeft import cli, designs, study
from arabicpeft.config import ExperimentConfig
from arabicpeft.results import write_results

NO_GPU = {"cuda": False, "count": 0, "name": None, "capability": None, "memory_bytes": None, "cuda_version": None}

BASE = ExperimentConfig(model="tiny-random", source="sample", max_steps=2)


def fake_result(cfg=BASE, stopped=None):
    return {"config": cfg.to_dict(), "data": {"source": "sample", "n_train": 40}, "synthetic": True,
            "metrics": {}, "training": {"global_step": 2, "stopped_by_time_budget_at_step": stopped},
            "efficiency": {}}


@pytest.fixture
def fake_train(monkeypatch, tmp_path):
    """train.run replaced by one that writes a results file (and records the configs it was given)."""
    import arabicpeft.train

    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    trained = []

    def run(cfg):
        trained.append(copy.deepcopy(cfg))
        if cfg.dialect == "gulf":
            raise RuntimeError("gulf data unreadable")
        model = Path(cfg.output_dir) / "model"
        model.mkdir(parents=True, exist_ok=True)
        return write_results(cfg.output_dir, fake_result(cfg))

    monkeypatch.setattr(arabicpeft.train, "run", run)
    return trained


def test_paper_design_plans_both_methods_and_two_stage_lora():
    design = designs.paper(BASE, dialects=["egyptian", "all"], seeds=[42, 84], msa_fractions=[0.5, 1.0])
    plan = design.plan()
    assert len(plan) == 2 * 2 * 2 + 2 * 2 * 2 * 2  # msa: methods x fractions x seeds; dialects: 2 conditions
    names = [r.name for r in plan]
    assert names[0] == "msa/full_frac0.5_seed42" and "with_msa_pretraining/lora_all_seed84" in names
    assert all(r.cfg.test_sets == list(designs._PAPER_TEST_SETS) for r in plan)
    started = [r for r in plan if r.start is not None]
    assert len(started) == 8 and all(r.stage.name == "with_msa_pretraining" for r in started)
    by = {r.name: r for r in started}
    # the paper's single pre-trained model: whole MSA, same method, first seed, for every seed
    assert by["with_msa_pretraining/lora_egyptian_seed84"].start.name == "msa/lora_frac1_seed42"
    assert by["with_msa_pretraining/full_all_seed42"].start.name == "msa/full_frac1_seed42"
    assert by["with_msa_pretraining/lora_egyptian_seed84"].cfg.extra["start"] == "msa/lora_frac1+merged"
    assert by["with_msa_pretraining/full_all_seed42"].cfg.extra["condition"] == "with_msa_pretraining"
    # what both methods' starts have in common (each starts from its own method's MSA model): a comparison pairs them
    assert {r.cfg.extra["start_context"] for r in started} == {"msa/frac1"}
    cont = designs.paper(BASE, methods=["lora"], dialects=["gulf"], seeds=[42], msa_fractions=[1.0],
                       lora_start="continue").plan()
    assert cont[-1].cfg.extra["start"] == "msa/lora_frac1+continued"
    with pytest.raises(ValueError, match="include 1.0"):
        designs.paper(BASE, msa_fractions=[0.5])


def test_designs_are_data_saved_whole_and_read_back(tmp_path):
    design = designs.mixing(BASE, seeds=[42], max_train_per_dialect=5)
    path = tmp_path / "design.json"
    path.write_text(json.dumps(design.to_dict()))
    again = designs.design(str(path))
    assert again.to_dict() == design.to_dict()
    assert [r.name for r in again.plan()] == ["pool/natural_seed42", "pool/balanced_seed42",
                                              "finetune/full_egyptian_seed42", "finetune/lora_egyptian_seed42"]
    pool = again.plan()[1].cfg
    assert (pool.dialect, pool.mixture, pool.max_train_per_dialect, pool.method) == ("all", "balanced", 5, "full")
    assert again.plan()[3].start.name == "pool/balanced_seed42"
    assert again.plan()[3].cfg.extra["start"] == again.plan()[3].cfg.extra["start_context"] == "pool/balanced"
    with pytest.raises(ValueError, match="Unknown study design"):
        designs.design("nope")


def test_dry_run_prints_one_line_per_planned_run_and_trains_nothing(capsys, monkeypatch):
    import arabicpeft.train

    monkeypatch.setattr(arabicpeft.train, "run", lambda cfg: pytest.fail("a dry run trains nothing"))
    cli.main(["study", "peft_vs_full", "--dry-run", "--variants", "lora,full", "--dialects", "egyptian,gulf",
              "--seeds", "42,84", "--model", "tiny-random", "--lora-r", "8"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("run ")]
    assert len(lines) == 8 and lines[0].startswith("run 1/8: train/lora_egyptian_seed42")
    assert lines[-1].startswith("run 8/8: train/full_gulf_seed84")


def test_launcher_skips_finished_resumes_cut_and_records_failures(fake_train, tmp_path):
    design = designs.peft_vs_full(BASE, variants=["lora", "full", "lora-int8"], dialects=["egyptian", "gulf"],
                                seeds=[42])
    root = tmp_path / "pvf"
    cut = dataclasses_replace(design.plan()[1].cfg, output_dir=str(root / "train" / "lora_gulf_seed42"))
    write_results(root / "train" / "full_egyptian_seed42", fake_result(design.plan()[2].cfg))  # finished
    write_results(root / "train" / "lora_gulf_seed42", fake_result(cut, stopped=1))  # cut by a time budget
    lines = []
    manifest = study.run_study(design, root=root, gpu=NO_GPU, log=lines.append)
    runs = {r["name"]: r for r in json.loads(manifest.path.read_text())["runs"]}
    assert runs["train/lora_egyptian_seed42"]["status"] == "done"
    assert runs["train/full_egyptian_seed42"]["status"] == "done"  # not retrained
    assert runs["train/lora_gulf_seed42"]["status"] == "failed"  # resumed, then failed: the reason is kept
    assert runs["train/lora_gulf_seed42"]["reason"] == "RuntimeError: gulf data unreadable"
    assert runs["train/lora-int8_egyptian_seed42"]["status"] == "skipped"
    assert "CUDA GPU" in runs["train/lora-int8_egyptian_seed42"]["reason"]
    assert [(c.method, c.dialect) for c in fake_train] == [("lora", "egyptian"), ("lora", "gulf"), ("full", "gulf")]
    assert any(line.startswith("run 3/6: train: full egyptian seed 42 — finished earlier") for line in lines)
    assert "run 1/6: train: lora egyptian seed 42 — started" in lines
    assert all(c.extra["study"] == "peft_vs_full" and c.extra["stage"] == "train" for c in fake_train)
    assert json.loads((root / study._MANIFEST_FILE).read_text(encoding="utf-8"))["counts"] == {"done": 2, "failed": 2, "skipped": 2}
    table = manifest.table()
    assert list(table.columns) == ["name", "status", "reason"] and len(table) == 6
    assert sorted(table["status"]) == ["done", "done", "failed", "failed", "skipped", "skipped"]
    assert table.set_index("status").loc["failed", "reason"].str.contains("gulf data unreadable").all()
    again = study.run_study(design, root=root, gpu=NO_GPU, log=lines.append)  # a rerun: only the failed ones
    assert len(fake_train) == 5 and again.runs["train/lora_egyptian_seed42"]["status"] == "done"


def test_started_stage_waits_for_its_start_and_points_at_its_model(fake_train, tmp_path):
    design = designs.mixing(BASE, targets=["egyptian", "gulf"], methods=["full"], seeds=[42], mixtures=["balanced"])
    design.stages[0].axes["mixture"] = ["balanced"]
    manifest = study.run_study(design, root=tmp_path, gpu=NO_GPU, log=lambda m: None)
    finetune = [c for c in fake_train if c.extra["stage"] == "finetune"]
    pool_model = tmp_path / "pool" / "balanced_seed42" / "model"
    assert [c.model for c in finetune] == [str(pool_model)] * 2 and finetune[0].extra["init_from"] == str(pool_model)
    assert manifest.runs["finetune/full_gulf_seed42"]["status"] == "failed"
    # a start that failed: the runs that start from it fail too, with the reason
    design = designs.mixing(BASE.__class__(model="tiny-random", source="sample", dialect="gulf"), targets=["egyptian"],
                          methods=["lora"], seeds=[1], mixtures=["balanced"])
    design.stages[0].overrides["dialect"] = "gulf"  # make the pooled stage fail
    manifest = study.run_study(design, root=tmp_path / "b", gpu=NO_GPU, log=lambda m: None)
    assert manifest.runs["finetune/lora_egyptian_seed1"]["status"] == "failed"
    assert "start run pool/balanced_seed1 has not finished" in manifest.runs["finetune/lora_egyptian_seed1"]["reason"]


def test_launcher_on_kaggle_stops_when_the_session_is_spent(monkeypatch, tmp_path):
    import arabicpeft.train
    from arabicpeft import kaggle

    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    monkeypatch.setattr(kaggle, "_KAGGLE_INPUT", tmp_path / "input")
    monkeypatch.setattr(kaggle, "_session_time_left_s", lambda: 0.0)
    monkeypatch.setattr(arabicpeft.train, "run", lambda cfg: pytest.fail("no run may start"))
    lines = []
    manifest = study.run_study(designs.peft_vs_full(BASE, dialects=["egyptian"], seeds=[42]), root=tmp_path / "s",
                               gpu=NO_GPU, log=lines.append)
    assert all(r["status"] == "planned" and "attach" in r["reason"] for r in manifest.runs.values())
    assert any("not started" in line for line in lines)


def test_launcher_restores_a_previous_kaggle_session_by_study_path(monkeypatch, tmp_path, fake_train):
    from arabicpeft import kaggle

    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    monkeypatch.setattr(kaggle, "_KAGGLE_INPUT", tmp_path / "input")
    monkeypatch.setattr(kaggle, "_KAGGLE_WORKING", tmp_path / "working")
    monkeypatch.delenv("ARABICPEFT_OUTPUT", raising=False)
    old = tmp_path / "input" / "my-output" / "runs" / "peft_vs_full" / "train" / "lora_egyptian_seed42"
    (old / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    (old / "checkpoints" / "checkpoint-1" / "trainer_state.json").write_text("{}")
    study.run_study(designs.peft_vs_full(BASE, variants=["lora"], dialects=["egyptian"], seeds=[42]), gpu=NO_GPU,
                    log=lambda m: None)
    cfg = fake_train[0]
    assert Path(cfg.output_dir) == (tmp_path / "working" / "runs" / "peft_vs_full" / "train" / "lora_egyptian_seed42").resolve()
    assert cfg.extra["restored_from"] == str(old) and cfg.time_budget_s > 0
    assert (Path(cfg.output_dir) / "checkpoints" / "checkpoint-1").is_dir()


# --- real tiny models: merging a LoRA start --------------------------------------------------------------------


def test_a_lora_start_is_merged_into_the_base_of_the_next_stage(adapters, tmp_path):
    import shutil

    import torch

    from arabicpeft.model import _load_base, load_model

    design = designs.mixing(dataclasses_replace(BASE, lora_r=4, lora_alpha=8, lora_targets="qkvo"), methods=["full", "lora"],
                          seeds=[42], mixtures=["balanced"], pool_method="lora")
    plan = design.plan()
    start_dir = tmp_path / "pool" / "balanced_seed42"
    shutil.copytree(adapters["egyptian"], start_dir / "model")
    write_results(start_dir, fake_result(plan[0].cfg))
    cfgs = []
    for run in plan[1:]:
        cfgs.append(study._start_model(run, tmp_path, run.cfg))
    merged = start_dir / study._MERGED_DIR
    assert [c.model for c in cfgs] == [str(merged)] * 2 and cfgs[1].init_adapter is None
    assert cfgs[0].extra["init_from"] == str(start_dir / "model")
    assert cfgs[1].extra["start"] == "pool/balanced+merged"
    peft_model = load_model(adapters["egyptian"]).model
    merged_model, _ = _load_base(cfgs[0])  # what the next stage trains: the merged model as its base
    features = torch.randn(1, 80, 2 * peft_model.config.max_source_positions)
    decoder = torch.tensor([[50258, 50272, 50359, 50363]])
    with torch.no_grad():
        a = peft_model(input_features=features, decoder_input_ids=decoder).logits
        b = merged_model(input_features=features, decoder_input_ids=decoder).logits
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_offline_mini_preset_plans_both_studies_and_the_bank_and_shrinks_in_the_ci_profile(monkeypatch, capsys):
    from arabicpeft import profiles

    full = designs._offline_mini().plan()
    assert len(full) == 13 and {r.stage.name for r in full} == {"train", "pool", "finetune", "bank"}
    assert all(r.cfg.model == "whisper-base" and r.cfg.source == "sample" for r in full)
    assert [r.cfg.seed for r in full] == [42] * 8 + [84] * 5  # order "seed": the first seed's whole study first
    assert [r.cfg.evaluate_before for r in full if r.stage.name == "finetune"] == [True, True]
    monkeypatch.setenv(profiles._ENV_VAR, "ci")
    cli.main(["study", "--preset", "offline-mini", "--dry-run"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("run ")]
    assert len(lines) == 13
    tiny = designs._offline_mini(profiles.apply(designs.offline_mini_base())).plan()
    assert all(r.cfg.model == "tiny-random" for r in tiny)
    assert [r.cfg.max_steps for r in tiny if r.stage.name == "pool"] == [profiles._CI_OVERRIDES["max_steps"] * 3 // 2]


def test_peft_methods_plans_methods_x_placements_and_full_fine_tuning_once_each_at_its_own_learning_rate(monkeypatch):
    from arabicpeft import methods

    plan = designs.design("peft_methods", BASE).plan()
    # (8 adapter variants x 2 placements + full) x 5 dialects x 3 seeds, all in one stage (one protocol)
    assert len(plan) == (8 * 2 + 1) * 5 * 3 and {r.stage.name for r in plan} == {"train"}
    full = [r for r in plan if r.cfg.method == "full"]
    assert len(full) == 15 and {r.cfg.lora_targets for r in full} == {"qv"}  # the placement it ignores: once
    assert {r.cfg.lr for r in plan} == {m.learning_rate for m in methods.METHODS.values()}  # each its own default
    assert {r.cfg.lora_targets for r in plan} == {"qv", "all-linear"}
    assert {(r.cfg.use_dora, r.cfg.use_rslora) for r in plan if r.values["variant"] in ("dora", "rslora")} == {
        (True, False), (False, True)}
    # a method added to the table is a variant of the study with no other change
    monkeypatch.setitem(methods.METHODS, "lora-kept", dataclasses_replace(methods.METHODS["lora"], name="lora-kept"))
    added = designs.peft_methods(BASE, variants=("lora-kept",), dialects=["egyptian"], seeds=[42]).plan()
    assert [r.name for r in added] == ["train/lora-kept_qv_egyptian_seed42", "train/lora-kept_all-linear_egyptian_seed42",
                                       "train/full_qv_egyptian_seed42"]
    with pytest.raises(ValueError, match="Unknown variant 'prefix'; choose from lora, full, vera, .*lora-kept, "
                                         "lora-int8"):
        designs.peft_methods(BASE, variants=("prefix",)).plan()
    mini = designs.design("peft-methods-mini").plan()
    assert len(mini) == 26 and all(r.cfg.model == "whisper-base" and r.cfg.source == "sample" and r.cfg.max_steps == 16
                                   and r.cfg.test_sets == ["egyptian"] for r in mini)


def test_is_complete(tmp_path):
    assert not study._is_complete(tmp_path / "absent.json")
    done = write_results(tmp_path / "done", fake_result())
    cut = write_results(tmp_path / "cut", fake_result(stopped=700))
    assert study._is_complete(done) and not study._is_complete(cut)


def test_run_if_empty_runs_a_design_only_into_an_empty_folder(fake_train, tmp_path):
    design = designs.peft_vs_full(BASE, variants=["lora", "full"], dialects=["egyptian"], seeds=[42])
    runs = study.run_if_empty(design, tmp_path, gpu=NO_GPU, log=lambda m: None)
    assert sorted(runs.runs["variant"].str.split().str[0]) == ["full", "lora"] and len(fake_train) == 2
    bigger = designs.peft_vs_full(BASE, variants=["lora", "full", "dora"], dialects=["egyptian"], seeds=[42])
    again = study.run_if_empty(bigger, tmp_path, gpu=NO_GPU, log=lambda m: None)
    assert len(fake_train) == 2 and len(again.runs) == 2  # a folder with results is read as it is


def test_shards_split_the_plan_and_keep_dependent_runs_together():
    design = designs.adapter_bank(BASE, dialects=["egyptian", "gulf"], seeds=[42, 84])
    plan = design.plan()  # 8 dialect runs, 2 pooled, 2 banks (each reads the 2 LoRA runs of its seed)
    one, two = study._shard(plan, 1, 2), study._shard(plan, 2, 2)
    assert sorted(r.name for r in one + two) == sorted(r.name for r in plan)
    assert not {r.name for r in one} & {r.name for r in two}
    assert [r.name for r in one] == ["dialect/lora_egyptian_seed42", "dialect/lora_gulf_seed42",
                                     "dialect/full_egyptian_seed42", "dialect/full_gulf_seed42",
                                     "pooled/seed42", "bank/seed42"]
    assert [r.name for r in two][-1] == "bank/seed84" and len(two) == 6
    paper = designs.paper(BASE, seeds=[1, 2]).plan()  # dialect runs start from the MSA run of their seed
    parts = [study._shard(paper, k, 3) for k in (1, 2, 3)]
    assert sum(map(len, parts)) == len(paper) and all(parts)
    assert all(r.start in part for part in parts for r in part if r.start is not None)
    assert study._shard(paper, 1, 1) == paper


def test_shards_run_at_once_into_one_root(fake_train, tmp_path):
    """Two processes, one shard each, at the same time: every run is trained once and the manifest keeps what
    both wrote (each write rereads the file under a lock)."""
    import multiprocessing

    design = designs.peft_vs_full(BASE, dialects=["egyptian", "levantine", "msa"], seeds=[42, 84])
    ctx = multiprocessing.get_context("fork")  # the children inherit the fake train.run
    shards = [ctx.Process(target=study.run_study, args=(design, tmp_path),
                          kwargs=dict(gpu=NO_GPU, log=lambda m: None, shard=(k, 2))) for k in (1, 2)]
    for p in shards:
        p.start()
    for p in shards:
        p.join(120)
    assert [p.exitcode for p in shards] == [0, 0]
    manifest = json.loads((tmp_path / study._MANIFEST_FILE).read_text(encoding="utf-8"))
    assert manifest["counts"] == {"done": 12}
    assert sorted(r["shard"] for r in manifest["runs"]) == ["1/2"] * 6 + ["2/2"] * 6
    assert all((Path(r["results"])).is_file() for r in manifest["runs"])
    lines = []
    study.run_study(design, root=tmp_path, gpu=NO_GPU, log=lines.append)  # unsharded rerun: nothing left to train
    assert fake_train == [] and sum("finished earlier" in line for line in lines) == 12


def test_study_command_takes_a_shard(capsys):
    cli.main(["study", "peft_vs_full", "--dialects", "egyptian,gulf", "--seeds", "42", "--shard", "2/2", "--dry-run"])
    assert capsys.readouterr().out.splitlines()[:2] == [  # the 2nd and 4th of the 4 single-run groups
        "run 1/2: train/lora_gulf_seed42  [lora, gulf, seed 42]",
        "run 2/2: train/full_gulf_seed42  [full, gulf, seed 42]"]
    with pytest.raises(SystemExit):
        cli.main(["study", "peft_vs_full", "--shard", "3/2", "--dry-run"])
    assert "'3/2': K must be between 1 and N" in capsys.readouterr().err


def test_a_part_refuses_another_design_and_an_empty_part_says_how_many_parts_fit(fake_train, tmp_path):
    from arabicpeft.errors import UserError

    two_seeds = designs.peft_vs_full(BASE, variants=["lora"], dialects=["egyptian"], seeds=[42, 84])
    study.run_study(two_seeds, root=tmp_path, gpu=NO_GPU, log=lambda m: None, shard=(1, 2))
    other_seeds = designs.peft_vs_full(BASE, variants=["lora"], dialects=["egyptian"], seeds=[42, 168])
    with pytest.raises(UserError, match="holds another design than this part's 2/2"):
        study.run_study(other_seeds, root=tmp_path, gpu=NO_GPU, log=lambda m: None, shard=(2, 2))
    with pytest.raises(UserError, match=r"its 2 runs form 2 groups .* at most 2 parts \(--shard K/2\)"):
        study.run_study(two_seeds, root=tmp_path, dry_run=True, log=lambda m: None, shard=(3, 3))
    assert len(fake_train) == 1


def _hold(folder, holding, release):
    from arabicpeft.run_dir import RunDir

    with RunDir(folder).hold():
        holding.set()
        release.wait(60)


def test_a_run_another_process_holds_is_left_to_it(fake_train, tmp_path):
    import multiprocessing

    design = designs.peft_vs_full(BASE, variants=["lora"], dialects=["egyptian", "levantine"], seeds=[42])
    ctx = multiprocessing.get_context("fork")
    holding, release = ctx.Event(), ctx.Event()
    other = ctx.Process(target=_hold, args=(tmp_path / design.plan()[0].name, holding, release))
    other.start()  # another process holds the run's folder, as train.run does while it trains there
    lines = []
    try:
        assert holding.wait(60)
        manifest = study.run_study(design, root=tmp_path, gpu=NO_GPU, log=lines.append)
    finally:
        release.set()
        other.join(60)
    assert [c.dialect for c in fake_train] == ["levantine"]
    assert any(line.startswith("run 1/2: train: lora egyptian seed 42 — left alone: another process is running "
                               f"{tmp_path / 'train' / 'lora_egyptian_seed42'} now") for line in lines), lines
    assert manifest.runs["train/lora_egyptian_seed42"]["status"] == "planned"


def test_a_preset_refuses_design_options_and_a_dry_run_names_the_study_root(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("ARABICPEFT_OUTPUT", str(tmp_path))
    with pytest.raises(SystemExit):
        cli.main(["study", "--preset", "offline-mini", "--seeds", "42", "--dry-run"])
    assert "error: the preset offline-mini takes no --seeds" in capsys.readouterr().err
    cli.main(["study", "peft_vs_full", "--dialects", "egyptian", "--seeds", "42", "--dry-run"])
    assert capsys.readouterr().out.splitlines()[-1] == str(tmp_path / "peft_vs_full")
    # the study's own --output-dir is its root, never taken for the runs' output_dir (a preset setting it refused it)
    for preset in designs.PRESETS:
        cli.main(["study", "--preset", preset, "--output-dir", str(tmp_path / preset), "--dry-run"])
        assert capsys.readouterr().out.splitlines()[-1] == str(tmp_path / preset)


def test_every_option_a_design_or_the_profile_overrides_is_used_or_refused(monkeypatch, capsys):
    """`study peft_vs_full --dialect egyptian --max-steps 2` trained every design dialect for the ci
    profile's 6 steps. Each config option that a design's axes or stages, or the ci profile, set for some run is
    given to the study command: either every planned run carries it, or it is refused in one line that names the
    option to use (or says the study decides it)."""
    from arabicpeft import profiles

    monkeypatch.setenv(profiles._ENV_VAR, "ci")
    planned = []
    monkeypatch.setattr(study, "run_study", lambda design, **kw: planned.append(design) or design.plan())
    values = {"dialect": "iraqi", "method": "full", "precision": "bf16", "use_dora": True, "seed": 7,
              "train_fraction": 0.5, "mixture": "balanced", "max_train_per_dialect": 5, "evaluate_before": True,
              "max_steps": 2, "eval_steps": 2, "time_budget_s": 60.0, "model": "whisper-base", "source": "hub",
              "max_test_samples": 3, "learning_rate": 0.01, "generation_max_length": 9}
    use_instead = {"dialect": {"peft_vs_full": "--dialects", "paper": "--dialects", "mixing": "--targets",
                               "adapter_bank": "--dialects", "peft_methods": "--dialects"},
                   "method": {"peft_vs_full": "--variants", "paper": "--methods", "mixing": "--methods",
                              "adapter_bank": "--variants", "peft_methods": "--variants"},
                   "seed": dict.fromkeys(designs.DESIGNS, "--seeds"), "train_fraction": {"paper": "--msa-fractions"},
                   "mixture": {"mixing": "--mixtures"}, "use_dora": {"peft_methods": "--variants"}}
    # refused for what the option asks, not because the study sets it: the backbones preset needs audio
    refused = {("backbones", "source"): "cannot read the hub source's 80-mel features"}
    checked = set()
    for name in [*designs.DESIGNS, *designs.PRESETS]:
        head = ["--preset", name] if name in designs.PRESETS else [name]
        default = designs.design(name, profiles.apply(designs.PRESETS[name].start() if name in designs.PRESETS else BASE))
        overridden = {k for r in default.plan() for k in values if getattr(r.cfg, k) != getattr(default.base, k)}
        for field in sorted(overridden | set(profiles._CI_OVERRIDES) & set(values)):
            checked.add((name, field))
            planned.clear()
            flag = "--" + field.replace("_", "-")
            argv = ["study", *head, "--dry-run", *([flag] if values[field] is True else [flag, str(values[field])])]
            try:
                cli.main(argv)
            except SystemExit as exit_info:
                err = capsys.readouterr().err.strip()
                assert exit_info.code == 1 and len(err.splitlines()) == 1, (argv, err)
                if (name, field) in refused:
                    assert refused[name, field] in err, (argv, err)
                    continue
                assert f"{flag} would be ignored there — " in err, (argv, err)
                assert (f"give {use_instead[field][name]} instead" in err if name in use_instead.get(field, {})
                        else "the study decides it" in err), (argv, err)
                continue
            capsys.readouterr()
            runs = planned[0].plan()
            if all(getattr(r.cfg, field) == values[field] for r in runs):
                continue
            # a stage may derive its value from the option (the preset's pooled runs train 1.5x max_steps): then
            # every run's value follows the option when it changes
            cli.main(argv[:-1] + [str(values[field] * 2)])
            capsys.readouterr()
            assert all(getattr(a.cfg, field) != getattr(b.cfg, field) for a, b in zip(runs, planned[-1].plan())), argv
    # the cases of the issue: the dialect option is refused, the profile's max_steps gives way to the option
    assert {("peft_vs_full", "dialect"), ("peft_vs_full", "max_steps"), ("offline-mini", "evaluate_before")} <= checked
    cli.main(["study", "peft_vs_full", "--dialects", "egyptian", "--max-steps", "2", "--dry-run"])
    assert {r.cfg.max_steps for r in planned[-1].plan()} == {2} and profiles._CI_OVERRIDES["max_steps"] != 2
