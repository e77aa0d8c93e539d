import json
import subprocess
import sys

import pytest

from app.cli import main
from tests.conftest import TINY_NAMES


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_prints_a_table_and_writes_the_checkpoint(capsys, tmp_path, tiny_names_file):
    code, out, err = run(capsys, "train", "--model", "mlp", "--data", str(tiny_names_file),
                         "--out", str(tmp_path), "--name", "small", "--steps", "30",
                         "--eval-interval", "10", "--n-hidden", "16", "--block-size", "2",
                         "--quiet")
    assert code == 0, err
    assert (tmp_path / "small.safetensors").is_file()
    assert f"wrote {tmp_path / 'small.safetensors'}" in out
    for split in ("train", "val", "test"):
        assert any(line.startswith(split) for line in out.splitlines())


def test_sample_is_reproducible_and_marks_training_names(capsys, models_dir):
    args = ("sample", "--models-dir", str(models_dir), "--model", "bigram", "-n", "8",
            "--seed", "3", "--prefix", "E")
    code, out1, _ = run(capsys, *args)
    assert code == 0
    _, out2, _ = run(capsys, *args)
    assert out1 == out2
    lines = out1.splitlines()
    assert lines[0].startswith("# bigram: 8 names, seed 3")
    assert len(lines) == 9 and all(line.startswith("e") for line in lines[1:])


def test_model_can_be_a_path_with_or_without_extension(capsys, models_dir):
    for model in (str(models_dir / "mlp"), str(models_dir / "mlp.safetensors")):
        code, out, err = run(capsys, "score", "--model", model, "emma")
        assert code == 0, err and "emma" in out


def test_score_details(capsys, models_dir):
    code, out, _ = run(capsys, "score", "--models-dir", str(models_dir), "--model", "bigram",
                       "--details", "José")
    assert code == 0
    lines = out.splitlines()
    assert lines[1].startswith("jose")
    assert len([line for line in lines if "P(" in line]) == 5  # j o s e + end


def test_eval_json(capsys, models_dir, tiny_names_file):
    code, out, _ = run(capsys, "eval", "--models-dir", str(models_dir), "--model", "bigram",
                       "--data", str(tiny_names_file), "--json")
    result = json.loads(out)
    assert code == 0 and result["n_words"] == len(TINY_NAMES)
    assert result["n_chars"] == sum(len(w) + 1 for w in tiny_names_file.read_text().split())
    assert 1.0 < result["nll"] < 3.5


@pytest.mark.parametrize(("argv", "message"), [
    (["score", "--model", "nope", "emma"], "no checkpoint 'nope'"),
    (["score", "--model", "bigram", "emma2"], "'2'"),
    (["sample", "--model", "bigram", "--prefix", "x y"], "' '"),
    (["sample", "--model", "bigram", "--top-k", "99"], "top_k"),
    (["sample", "--model", "bigram", "--seed", "-1"], "--seed"),
    (["eval", "--model", "bigram", "--data", "ssa:1492"], "years 1880-2017"),
    (["train", "--model", "bigram", "--data", "missing.txt"], "does not exist"),
])
def test_errors_are_one_line_and_exit_1(capsys, models_dir, argv, message):
    if argv[0] != "train":
        argv = [*argv, "--models-dir", str(models_dir)]
    code, out, err = run(capsys, *argv)
    assert code == 1
    assert err.count("\n") == 1 and err.startswith(f"namelab {argv[0]}: error:")
    assert message in err


def test_console_script_help_has_examples():
    out = subprocess.run([sys.executable, "-m", "app.cli", "train", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "examples:" in out and "--block-size" in out and "--smoothing" in out
