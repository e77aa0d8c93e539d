import errno
import functools
import json
import math
import os
import subprocess
import sys
from collections import Counter
from dataclasses import fields, replace
from itertools import pairwise

import pytest
import torch
import tqdm

from app.cli import DEFAULT_MODELS_DIR, main
from app.data import load_dataset, split_words
from app.lm import KINDS, Bigram
from app.lm.config import OptimConfig
from app.lm.train import evaluate
from app.store.checkpoints import load_checkpoint
from tests.conftest import TINY_NAMES
from tests.live import ROOT


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


def test_train_progress_keeps_showing_the_last_validation_loss(capsys, monkeypatch, tmp_path,
                                                              tiny_names_file):
    """The bar's postfix is redrawn every 50 steps: the last val must survive those redraws
    (it used to flash at the validation step only, never seen in a long run). The bar draws
    every update here (tqdm skips frames closer than 0.1 s: which ones depends on speed)."""
    monkeypatch.setattr(tqdm, "tqdm", functools.partial(tqdm.tqdm, mininterval=0, miniters=1))
    code, out, err = run(capsys, "train", "--model", "mlp", "--data", str(tiny_names_file),
                         "--out", str(tmp_path), "--name", "small", "--steps", "120",
                         "--eval-interval", "50", "--n-hidden", "16", "--block-size", "2")
    assert code == 0, err
    ckpt = load_checkpoint(tmp_path / "small.safetensors")
    first_val = ckpt.meta.history.val[0]
    frames = [f for f in err.replace("\r", "\n").splitlines() if "/120 " in f]
    step = {f: int(f.split("/120")[0].split()[-1]) for f in frames}
    after_first = [f for f in frames if step[f] > 50]  # drawn after the first validation pass
    assert after_first and all("val=" in f for f in after_first), after_first
    until_second = [f for f in after_first if step[f] <= 100]  # (100: drawn before its postfix)
    assert until_second and all(f"val={first_val:.4f}" in f for f in until_second), frames


def test_sample_is_reproducible_and_marks_training_names(capsys, models_dir):
    args = ("sample", "--models-dir", str(models_dir), "--model", "bigram", "-n", "8",
            "--seed", "3", "--prefix", "E")
    code, out1, _ = run(capsys, *args)
    assert code == 0
    _, out2, _ = run(capsys, *args)
    assert out1 == out2
    lines = out1.splitlines()
    assert lines[0].startswith("# bigram: 8 names, seed 3")
    assert lines[1].split() == ["name", "log", "P", "in", "data", "in", "training"]  # a header
    assert len(lines) == 10 and all(line.startswith("e") for line in lines[2:])
    assert all(line.split()[-1] in ("yes", "no") for line in lines[2:])


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


def test_console_script_help_has_examples_and_lists_the_kinds():
    out = subprocess.run([sys.executable, "-m", "app.cli", "train", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "examples:" in out
    for kind in KINDS.values():
        assert f"  {kind.name} " in out and kind.description[:40] in out


def test_the_sample_and_score_examples_use_the_best_shipped_model():
    """Issue 21.1: the examples sampled from mlp; they name the model sampling opens on for
    the shipped models (app/store/registry.py's order), or a counting bigram for its own
    features."""
    import re

    from app.cli import EXAMPLES
    from app.store.registry import Registry

    reg = Registry.load_dir(DEFAULT_MODELS_DIR)
    best = reg.sampler().name
    for command in ("sample", "score"):
        named = re.findall(r"--model (?:models/)?(\S+)", EXAMPLES[command])
        assert named[0] == best, (command, named)
        assert {n for n in named if not reg.get(n).kind.has_counts} == {best}, (command, named)


@pytest.mark.parametrize("name", list(KINDS))
def test_train_help_of_a_kind_lists_its_config_and_training_flags(capsys, name):
    kind = KINDS[name]
    with pytest.raises(SystemExit) as exit:
        main(["train", "--model", name, "--help"])  # builds that kind's parser: no collision
    out = " ".join(capsys.readouterr().out.split())
    assert exit.value.code == 0
    flags = [f for f in fields(kind.config)]
    if not kind.trains_by_counting:
        flags += fields(kind.training)
    for f in flags:
        value = getattr(kind.training if f in fields(OptimConfig) else kind.config(), f.name)
        assert f"--{f.name.replace('_', '-')} " in out and f"(default {value})" in out
        assert " ".join(f.metadata["help"].split()) in out


def test_a_training_flag_of_another_kind_is_refused(capsys, tiny_names_file):
    with pytest.raises(SystemExit) as exit:
        main(["train", "--model", "bigram", "--steps", "3", "--data", str(tiny_names_file)])
    code = exit.value.code
    assert code == 2 and "--steps" in capsys.readouterr().err


def test_a_flag_out_of_its_bounds_is_one_line(capsys, tiny_names_file):
    code, out, err = run(capsys, "train", "--model", "mlp", "--dropout", "1", "--data",
                         str(tiny_names_file))
    assert code == 1 and err == "namelab train: error: dropout must be < 1, got 1.0\n"


def unigram_nll(train: list[str], val: list[str]) -> float:
    """The baseline a model that ignores context cannot beat: letter frequencies of the
    training names (the end '.' included), scored on the validation names."""
    counts = Counter("".join(w + "." for w in train))
    total = sum(counts.values())
    chars = "".join(w + "." for w in val)
    return -sum(math.log(counts[c] / total) for c in chars) / len(chars)


# Every kind that learns by gradient descent, with the quick recipe its module declares.
QUICK = sorted(k.name for k in KINDS.values() if k.quick is not None)


def test_every_gradient_kind_declares_a_quick_recipe():
    assert set(QUICK) == {k.name for k in KINDS.values() if not k.trains_by_counting}
    for name in QUICK:
        assert KINDS[name].quick_training is not None, name


def flags_of(cfg) -> list[str]:
    """A config dataclass as `namelab train` flags."""
    return [arg for f in fields(cfg)
            for arg in (f"--{f.name.replace('_', '-')}", str(getattr(cfg, f.name)))]


@pytest.mark.slow
@pytest.mark.parametrize("kind", QUICK)
def test_a_model_trained_through_the_cli_learns(capsys, tmp_path, kind):
    """A frozen trainer (issue 10: every validation pass after the first saw the weights of the
    first) fails here: val must end below the counted bigram of the same split, far below it
    for a kind that reads more than the last letter."""
    k = KINDS[kind]
    training = replace(k.quick_training, eval_interval=max(1, k.quick_training.steps // 4))
    code, out, err = run(capsys, "train", "--model", kind, "--data", "ssa:1880",
                         "--out", str(tmp_path), "--name", "m", *flags_of(k.quick),
                         *flags_of(training), "--quiet")
    assert code == 0, err
    code, out, err = run(capsys, "eval", "--model", str(tmp_path / "m"), "--split", "val",
                         "--json")
    assert code == 0, err
    val = json.loads(out)
    split = split_words(load_dataset("ssa:1880").words, 42)
    assert val["split"] == "val" and val["n_words"] == len(split.val) == 200
    ckpt = load_checkpoint(tmp_path / "m.safetensors")
    bigram = evaluate(Bigram(ckpt.model.vocab).fit(split.train).eval(), split.val)  # 2.42
    assert val["nll"] < unigram_nll(split.train, split.val) - 0.3  # 2.84
    if ckpt.model.block_size > 1:
        assert val["nll"] < bigram - 0.05, (val["nll"], bigram)  # the MLP: 2.20
    else:
        assert val["nll"] < bigram + 0.02, (val["nll"], bigram)
    history = ckpt.meta.history  # it moved at every pass, downhill (a converged model may
    assert len(set(history.val)) == 4  # wobble in the 5th decimal)
    assert all(b < a + 1e-3 for a, b in pairwise(history.val)), history.val


def test_eval_recomputes_the_checkpoints_own_split(capsys, models_dir, tiny_names_file):
    ckpt = load_checkpoint(models_dir / "mlp.safetensors")
    split = split_words(TINY_NAMES, ckpt.meta.split.seed)
    code, out, err = run(capsys, "eval", "--models-dir", str(models_dir), "--model", "mlp",
                         "--json")  # default: its own data, val and test
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["split"] for r in rows] == ["val", "test"]
    assert [r["n_words"] for r in rows] == [len(split.val), len(split.test)]
    metrics = ckpt.meta.metrics
    assert rows[0]["nll"] == pytest.approx(metrics.val_nll, abs=1e-5)
    assert rows[1]["nll"] == pytest.approx(metrics.test_nll, abs=1e-5)
    code, out, _ = run(capsys, "eval", "--models-dir", str(models_dir), "--model", "mlp",
                       "--split", "train")
    assert code == 0 and f"{metrics.train_nll:.5f}"[:-1] in out


def test_eval_refuses_a_split_of_other_data(capsys, models_dir, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("anna\nbob\n")
    code, _, err = run(capsys, "eval", "--models-dir", str(models_dir), "--model", "mlp",
                       "--data", str(other), "--split", "val")
    assert code == 1 and "is not the data mlp was trained on" in err


class FullDisk:
    """A file whose write stores half of what it is given, then fails as a full disk does."""

    def __init__(self, f) -> None:
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        self.f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.f, name)


def no_space(*args):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_train_on_a_full_disk_is_one_line_and_keeps_the_old_checkpoint(
        capsys, monkeypatch, tmp_path, tiny_names_file, where):
    import app.store.files  # where a checkpoint's bytes are written

    args = ("train", "--model", "bigram", "--data", str(tiny_names_file), "--out",
            str(tmp_path), "--name", "b", "--quiet")
    assert run(capsys, *args)[0] == 0
    old = (tmp_path / "b.safetensors").read_bytes()
    if where == "write":
        real = os.fdopen
        monkeypatch.setattr(app.store.files.os, "fdopen", lambda *a: FullDisk(real(*a)))
    else:
        monkeypatch.setattr(app.store.files.os, "fsync", no_space)

    code, out, err = run(capsys, *args, "--smoothing", "2", "--force")
    assert code == 1
    assert err.strip().splitlines() == [
        f"namelab train: error: {tmp_path / 'b.safetensors'}: cannot write: "
        "No space left on device"]
    assert (tmp_path / "b.safetensors").read_bytes() == old  # intact, and still loadable
    assert load_checkpoint(tmp_path / "b.safetensors").meta.config == {"smoothing": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["b.safetensors"]  # no temporary file left
def test_score_scores_the_good_names_and_reports_the_bad_one(capsys, models_dir):
    code, out, err = run(capsys, "score", "--models-dir", str(models_dir), "--model", "bigram",
                         "r2d2", "emma")
    assert code == 1
    assert [line.split()[0] for line in out.splitlines()[1:2]] == ["emma"]
    assert "r2d2" in err and "'2'" in err and "emma" not in err
    assert "held-out names" in out  # what the plausibility column is


def test_a_missing_checkpoint_lists_the_available_models(capsys, models_dir):
    code, _, err = run(capsys, "sample", "--models-dir", str(models_dir), "--model", "mpl")
    assert code == 1
    assert "no checkpoint 'mpl'" in err and "bigram, conditional, mlp, neural-bigram" in err


def test_help_does_not_import_torch_and_the_default_folder_is_the_apps():
    """`namelab --help` stays fast: torch (seconds to import) only in the commands using it."""
    code = ("import sys\nfrom app import cli\ntry:\n    cli.main(['--help'])\n"
            "except SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules and 'pydantic_settings' not in sys.modules\n"
            "from app.config import DEFAULT_MODELS_DIR\n"
            "assert cli.DEFAULT_MODELS_DIR == DEFAULT_MODELS_DIR\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "train" in r.stdout and "sample" in r.stdout


def test_sample_with_constraints_prints_the_mass_line_as_the_page_does(capsys, models_dir):
    from app.domain.params import SampleParams
    from app.domain.services import fit_sentence, sample_names
    from app.store.registry import LoadedModel

    code, out, err = run(capsys, "sample", "--models-dir", str(models_dir), "--model", "bigram",
                         "-n", "5", "--seed", "2", "--suffix", "a", "--min-len", "4",
                         "--top-p", "0.95")
    assert code == 0, err
    lines = out.splitlines()
    got = [line.split()[0] for line in lines[2:7]]
    assert all(x.endswith("a") and len(x) >= 4 for x in got)
    m = LoadedModel.from_checkpoint(load_checkpoint(models_dir / "bigram.safetensors"))
    p = SampleParams(n=5, seed=2, suffix="a", min_len=4, top_p=0.95)
    r = sample_names(m, p)
    assert [s.name for s in r.names] == got
    assert lines[7] == f"# {fit_sentence(r, p)}"
    assert "% of this model's names at these settings end in \u2011a and have at least 4" \
        in lines[7]


@pytest.mark.parametrize(("argv", "words"), [
    (["--pattern", "(ab"], "pattern (--pattern): pattern '(ab' is not a valid regular"),
    (["--min-len", "9", "--max-len", "4"], "min_len (--min-len): min length (9) must be at most"),
    (["--top-p", "0"], "top_p (--top-p): top-p must be greater than 0"),
])
def test_bad_constraints_are_one_line_errors(capsys, models_dir, argv, words):
    code, out, err = run(capsys, "sample", "--models-dir", str(models_dir), "--model", "bigram",
                         *argv)
    assert code == 1 and words in err and len(err.strip().splitlines()) == 1


def test_train_writes_into_the_current_folder_says_where_and_never_overwrites_unasked(
        capsys, monkeypatch, tmp_path, tiny_names_file):
    """Issue 21: from any folder, `namelab train` wrote into the installed package's models/
    and replaced an existing model without a word."""
    monkeypatch.chdir(tmp_path)
    args = ("train", "--model", "bigram", "--data", str(tiny_names_file), "--quiet")
    code, out, err = run(capsys, *args)
    path = tmp_path / "models" / "bigram.safetensors"
    assert code == 0, err
    assert out.splitlines()[0].startswith(f"wrote {path} ")  # absolute
    before = path.read_bytes()
    code, out, err = run(capsys, *args, "--smoothing", "3")
    assert code == 1 and out == ""
    assert err.strip().splitlines() == [
        f"namelab train: error: {path} exists; use --force to replace it, or --name to "
        "write another"]
    assert path.read_bytes() == before
    assert run(capsys, *args, "--smoothing", "3", "--force")[0] == 0
    assert load_checkpoint(path).meta.config == {"smoothing": 3.0}
    assert not (DEFAULT_MODELS_DIR / "bigram.safetensors").samefile(path)


@pytest.mark.parametrize("n", [1, 4])
def test_too_few_names_for_a_split_is_one_line(capsys, tmp_path, n):
    data = tmp_path / "few.txt"
    data.write_text("\n".join(["emma", "ava", "mia", "zoe"][:n]) + "\n")
    args = ("train", "--model", "bigram", "--data", str(data), "--out", str(tmp_path), "--quiet")
    code, out, err = run(capsys, *args)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "too few names for an 80/10/10 split" in err and "use --split none" in err
    assert not (tmp_path / "bigram.safetensors").exists()
    assert run(capsys, *args, "--split", "none")[0] == 0


def test_training_takes_the_names_scoring_takes(capsys, tmp_path):
    """zoë and mary-jane: refused by training, accepted by scoring before issue 21; now both
    normalise them alike (accents stripped, hyphens and apostrophes dropped)."""
    data = tmp_path / "mine.txt"
    data.write_text("Zoë\nMary-Jane\nD'Andre\nemma\n")
    code, out, err = run(capsys, "train", "--model", "bigram", "--data", str(data), "--out",
                         str(tmp_path), "--split", "none", "--quiet")
    assert code == 0, err
    code, out, err = run(capsys, "score", "--model", str(tmp_path / "bigram"), "zoë",
                         "mary-jane", "D\u2019Andre")
    assert code == 0, err
    rows = [line.split() for line in out.splitlines()[1:4]]
    assert [(r[0], r[-1]) for r in rows] == [("zoe", "yes"), ("maryjane", "yes"),
                                            ("dandre", "yes")]


def test_calibrate_rewrites_the_reference_and_keeps_the_weights(capsys, tmp_path,
                                                                tiny_names_file):
    from safetensors.torch import load_file

    from app.store.checkpoints import load_checkpoint, read_tensors, write_tensors
    from app.store.schema import OTHER_NAMES_TENSOR

    run(capsys, "train", "--model", "bigram", "--data", str(tiny_names_file), "--out",
        str(tmp_path), "--quiet")
    path = tmp_path / "bigram.safetensors"
    trained = load_checkpoint(path).meta
    assert trained.held_out.by_length
    # as a checkpoint made before issue 21: per-character quantiles only, no other names
    tensors = read_tensors(path)
    del tensors[OTHER_NAMES_TENSOR]
    old = trained.held_out.model_copy(update={"length_centre": None, "length_scale": None,
                                              "length_quantiles": None})
    write_tensors(path, tensors, trained.model_copy(update={"held_out": old}))
    assert load_checkpoint(path).other_names is None
    code, out, err = run(capsys, "calibrate", str(path))
    assert code == 0, err
    assert out.strip() == f"calibrated {path}  ({trained.held_out.n_names:,} held-out names)"
    again = load_checkpoint(path)
    assert again.meta.held_out.length_quantiles == pytest.approx(
        trained.held_out.length_quantiles, abs=1e-5)
    parts = split_words(load_dataset(str(tiny_names_file)).words, 42)
    assert again.other_names == sorted(set(parts.val + parts.test) - set(parts.train))
    after = load_file(path)
    assert all(torch.equal(after[k], v) for k, v in tensors.items())
    assert again.meta.model_copy(update={"held_out": None}) == \
        trained.model_copy(update={"held_out": None})


def test_calibrate_refuses_other_data(capsys, tmp_path, tiny_names_file):
    run(capsys, "train", "--model", "bigram", "--data", str(tiny_names_file), "--out",
        str(tmp_path), "--quiet")
    other = tmp_path / "other.txt"
    other.write_text("emma\nava\n")
    before = (tmp_path / "bigram.safetensors").read_bytes()
    code, out, err = run(capsys, "calibrate", str(tmp_path / "bigram"), "--data", str(other))
    assert code == 1 and "is not the data bigram was trained on" in err
    assert (tmp_path / "bigram.safetensors").read_bytes() == before


def test_sample_by_decade_and_sex_repeats_and_other_kinds_refuse(capsys, models_dir):
    args = ("sample", "--models-dir", str(models_dir), "--model", "conditional", "-n", "6",
            "--seed", "4", "--decade", "1920", "--sex", "f")
    code, out1, err = run(capsys, *args)
    assert code == 0, err
    assert run(capsys, *args)[1] == out1
    assert run(capsys, *args[:-4])[1] != out1  # the condition changes the draw
    code, _, err = run(capsys, "sample", "--models-dir", str(models_dir), "--model", "mlp",
                       "--decade", "1920")
    assert code == 1 and "decade (--decade)" in err and "kind conditional" in err
    code, _, err = run(capsys, "sample", "--models-dir", str(models_dir), "--model",
                       "conditional", "--decade", "1921")
    assert code == 1 and "1880, 1890" in err and "got '1921'" in err


def test_eval_of_a_conditional_model_reports_decades_and_the_era_check(capsys, tmp_path):
    """On its own decades data: validation NLL per decade against the decade's bigram (written
    out here from counts) and the era check on the held-out names."""
    from app.data.decades import decade_data

    code, _, err = run(capsys, "train", "--model", "conditional", "--data",
                       "ssa:1880-1899:decades", "--out", str(tmp_path), "--name", "era",
                       "--steps", "200", "--n-hidden", "32", "--n-layers", "1",
                       "--block-size", "3", "--quiet")
    assert code == 0, err
    code, out, err = run(capsys, "eval", "--model", str(tmp_path / "era"), "--json")
    assert code == 0, err
    lines = [json.loads(x) for x in out.splitlines()]
    rows = lines[-2]["per_decade"]
    assert [r["decade"] for r in rows] == [1880, 1890]
    words = load_dataset("ssa:1880-1899:decades").words
    split = split_words(words, 42)
    for r in rows:
        d = (r["decade"] - 1880) // 10
        train = [w for w in split.train if w.decade == d]
        val = [w for w in split.val if w.decade == d]
        counts = Counter((a, b) for w in train for a, b in pairwise("." + w + "."))
        rows_total = Counter(a for w in train for a in "." + w)
        nll = -sum(math.log((counts[a, b] + 1) / (rows_total[a] + 27))
                   for w in val for a, b in pairwise("." + w + "."))
        assert r["n_words"] == len(val)
        assert r["bigram_nll"] == pytest.approx(nll / sum(len(w) + 1 for w in val), rel=1e-9)
        # per baby: each example's pairs counted its births times, in the table and the NLL
        babies = {part: [(w, n) for w, n in zip(words, words.counts, strict=True)
                         if w.decade == d] for part, words in (("train", split.train),
                                                               ("val", split.val))}
        counts, rows_total = Counter(), Counter()
        for w, n in babies["train"]:
            for a, b in pairwise("." + w + "."):
                counts[a, b] += n
                rows_total[a] += n
        nll = -sum(n * math.log((counts[a, b] + 1) / (rows_total[a] + 27))
                   for w, n in babies["val"] for a, b in pairwise("." + w + "."))
        assert r["births_bigram_nll"] == pytest.approx(
            nll / sum(n * (len(w) + 1) for w, n in babies["val"]), rel=1e-6)  # float32 logs
        assert 0 < r["births_model_nll"] < r["model_nll"] + 3
    check = lines[-1]["era_check"]
    held = decade_data(1880, 1899).held_out
    for c in check.values():
        assert c["n_names"] == len(held) and 0 <= c["top1"] <= c["top3"] <= 1
        common = Counter(held.values()).most_common(1)[0]
        assert c["baseline_top1"] == pytest.approx(common[1] / len(held))
