"""The project as a new user meets it: README commands, CI entry, exports, docs and examples."""

import pathlib
import re
import subprocess
import sys

import pytest

import jkutils
import jkutils.data

ROOT = pathlib.Path(__file__).resolve().parents[1]

PUBLIC_NAMES = """
set_random_seed key_tree seed_from_key to_categorical normalize pad_sequences
pack_x_y_sample_weight unpack_x_y_sample_weight split_dataset ArraySource HDF5Matrix PyDataset
Sequence timeseries_dataset_from_array get_file Progbar track progbar CustomObjectScope
custom_object_scope get_custom_objects register_serializable register_keras_serializable
get_registered_name get_registered_object get serialize deserialize print_summary model_to_dot
plot_model make_data_mesh replicate shard_batch data_parallel data_parallel_train_step
multi_gpu_model image_dataset_from_directory text_dataset_from_directory
audio_dataset_from_directory load_img img_to_array array_to_img save_img smart_resize
""".split()

DATA_NAMES = """
split_dataset ArraySource HDF5Matrix PyDataset Sequence to_grain process_shard
timeseries_dataset_from_array pack_x_y_sample_weight unpack_x_y_sample_weight
image_dataset_from_directory text_dataset_from_directory audio_dataset_from_directory
""".split()


def _quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README's Quick start has no ```bash block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_quick_start_is_two_self_sufficient_commands():
    main_job, tests = _quick_start_commands()
    for command in (main_job, tests):
        assert command.startswith("python3.11 -m venv .venv && ")
    assert main_job.endswith("examples/quickstart.py")
    assert "pip install" in tests and tests.endswith("-m pytest")


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "sed -n 2p" in ci and "eval" in ci  # runs the README's second command verbatim
    out = subprocess.run(
        ["bash", "-c", "awk '/^## Quick start/{q=1} q && /^```bash/{b=1; next} "
                       "b && /^```/{exit} b' README.md | sed -n 2p"],
        cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == _quick_start_commands()[1]


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_public_name_exported_with_docstring_example(name):
    obj = getattr(jkutils, name)
    doc = obj.__doc__ or ""
    assert "Example" in doc, f"jkutils.{name} has no example in its docstring"


@pytest.mark.parametrize("name", DATA_NAMES)
def test_data_names_exported_from_jkutils_data(name):
    assert getattr(jkutils.data, name) is not None


def test_every_docs_page_is_linked_from_the_index_and_links_resolve():
    docs = ROOT / "docs"
    index = (docs / "index.md").read_text()
    for page in docs.glob("*.md"):
        if page.name != "index.md":
            assert f"({page.name})" in index, f"docs/index.md does not link {page.name}"
    for page in [*docs.glob("*.md"), ROOT / "README.md"]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" not in target:
                assert (page.parent / target).exists(), f"{page.name} links missing {target}"


def _run_example(script: str, *args: str, timeout: int = 240) -> str:
    out = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


def test_quickstart_runs_end_to_end(tmp_path):
    stdout = _run_example("quickstart.py", str(tmp_path / "out"))
    accuracy = float(re.search(r"held-out accuracy: ([0-9.]+)", stdout).group(1))
    assert accuracy > 0.6  # four classes: chance is 0.25, the majority class 0.40
    assert "1 HTTP request for 2 calls" in stdout
    assert "Total params: 3,300" in stdout  # 16*64+64 + 64*32+32 + 32*4+4
    assert list((tmp_path / "out").glob("model.*"))


def test_conv_net_example_writes_its_outputs(tmp_path):
    _run_example("conv_net_summary.py", str(tmp_path / "conv"))
    assert list((tmp_path / "conv").iterdir())


def test_pydataset_example_runs():
    assert _run_example("pydataset_to_grain.py").strip()


def test_readme_tour_runs():
    text = (ROOT / "README.md").read_text()
    tour = re.search(r"## A short tour\n.*?```python\n(.*?)```", text, re.S).group(1)
    exec(compile(tour, "README.md", "exec"), {})
