"""What a user opening the notebooks gets (nbval executes them; these check what is written in them)."""

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.stem)
def notebook(request):
    return request.param, nbformat.read(request.param, 4)


def parameters_cell(nb) -> str:
    return next(c.source for c in nb.cells if c.cell_type == "code")


def test_kernel_language_metadata_makes_a_python_script(notebook):
    """nbconvert's script exporter names its output by language_info.file_extension (".txt" without it)."""
    _, nb = notebook
    assert nb.metadata["kernelspec"]["language"] == "python"
    assert nb.metadata["language_info"]["name"] == "python"
    assert nb.metadata["language_info"]["file_extension"] == ".py"


def test_saved_without_outputs(notebook):
    """No output is committed, so no progress bar frozen at 0 % (nor any stale number) is ever shown."""
    _, nb = notebook
    assert all(not c.outputs and c.execution_count is None for c in nb.cells if c.cell_type == "code")


def test_text_cites_only_what_a_user_has(notebook):
    _, nb = notebook
    text = "\n".join(c.source for c in nb.cells)
    assert not re.search(r"research notes|notes\.md|/work/|shared/research|§\d", text)


def test_parameters_write_under_the_output_root_not_the_checkout(notebook):
    _, nb = notebook
    assert not re.search(r"""=\s*["']runs/""", parameters_cell(nb))


@pytest.mark.parametrize("stem", ["01_train_one_dialect", "02_peft_vs_full", "03_statistical_analysis"])
def test_training_notebooks_name_their_offline_cpu_values(stem):
    nb = nbformat.read(next(p for p in NOTEBOOKS if p.stem == stem), 4)
    cell = parameters_cell(nb)
    assert "Offline on a CPU, in minutes" in cell and "whisper-base" in cell and '"sample"' in cell
    assert re.search(r"^encoder_seconds|^ENCODER_SECONDS", cell, re.M)  # the window cut is a parameter


def test_cells_hold_calls_not_logic(notebook):
    """Logic lives in the library, where it is tested: no cell of a notebook loops or branches at its top level."""
    import ast

    path, nb = notebook
    found = set()
    for cell in nb.cells:
        if cell.cell_type != "code" or "parameters" in cell.metadata.get("tags", []):
            continue
        source = "\n".join(line for line in cell.source.splitlines() if not line.startswith("%"))
        if any(isinstance(s, (ast.For, ast.While, ast.If, ast.With, ast.Try)) for s in ast.parse(source).body):
            found.add(cell.id)
    assert not found, f"{path.stem}: cells {sorted(found)} loop or branch"
