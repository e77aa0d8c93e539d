"""Training jobs: the job process (a real subprocess) trains and publishes atomically; the runner
queues, claims, cancels, and notices a job whose process is gone (issue 24, items 2, 4, 5).

No sleeps that stand for an event: each wait polls the job's state file until a condition holds,
bounded by DEADLINE (a bound on a broken run, not a timing assumption).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.lm import KINDS
from app.store.checkpoints import load_checkpoint
from app.store.jobinput import check_options, names_from_list
from app.store.jobs import STALE, Jobs, JobState
from app.store.runner import NameTaken, QueueFull, Runner
from tests.conftest import TINY_NAMES

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 120.0
NAMES = names_from_list(TINY_NAMES * 4)


def options(kind: str, **values):
    return check_options(KINDS[kind], values, max_steps=100_000, max_params=2_000_000)


def wait_for(runner_or_jobs, job_id: str, condition, deadline: float = DEADLINE) -> JobState:
    end = time.monotonic() + deadline
    while True:
        job = runner_or_jobs.get(job_id)
        if condition(job):
            return job
        assert time.monotonic() < end, f"job never got there: {job.public()}"
        time.sleep(0.02)


def user_files(folder: Path) -> list[str]:
    """What a job left in the users' folder, its jobs folder aside."""
    return sorted(p.name for p in folder.iterdir() if p.name != ".jobs")


@pytest.fixture
def runner(tmp_path):
    r = Runner(tmp_path / "users", max_jobs=1, max_queue=2)
    r.start()
    yield r
    r.stop()


def run_bigram_job(users: Path, job_id: str, before=None) -> subprocess.CompletedProcess:
    """`python -m app.store.jobs run` of a bigram job named pets (`before()` just before)."""
    jobs = Jobs.beside(users)
    job = JobState(id=job_id, kind="bigram", name="pets", data=NAMES.describe(),
                   options=options("bigram").as_dict(), max_seconds=900)
    jobs.create(job, NAMES.words)
    if before:
        before()
    return subprocess.run([sys.executable, "-m", "app.store.jobs", "run", str(jobs.path(job_id)),
                           str(users)], cwd=ROOT, timeout=DEADLINE, capture_output=True)


def test_a_bigram_job_in_its_own_process_writes_its_checkpoint_and_says_done(tmp_path):
    users = tmp_path / "users"
    assert run_bigram_job(users, "abc123").returncode == 0
    jobs = Jobs.beside(users)
    job = jobs.get("abc123")
    assert job.state == "done" and job.model == "pets" and job.error is None
    assert job.pid != os.getpid() and job.metrics["val_nll"] > 0
    ckpt = load_checkpoint(users / "pets.safetensors")
    assert ckpt.meta.model_type == "bigram" and set(ckpt.training_names) <= set(NAMES.words)
    assert ckpt.meta.dataset.n_words == len(NAMES.words)
    assert user_files(users) == ["pets.safetensors"]


def test_a_job_never_replaces_a_file_that_appears_while_it_trains(tmp_path):
    users = tmp_path / "users"
    target = users / "pets.safetensors"
    assert run_bigram_job(users, "abc124", lambda: target.write_bytes(b"someone else's")
                          ).returncode == 1
    job = Jobs.beside(users).get("abc124")
    assert job.state == "failed" and "exists" in job.error
    assert target.read_bytes() == b"someone else's" and user_files(users) == ["pets.safetensors"]


def test_an_mlp_job_reports_its_progress_while_it_trains(runner):
    job = runner.submit("mlp", "quick", NAMES, options("mlp", steps=2000, eval_interval=100,
                                                        batch_size=256, warmup=10))
    seen = set()
    while not (job := runner.get(job.id)).final:
        if job.state == "running" and job.step:
            seen.add(job.step)
        time.sleep(0.02)
    assert job.state == "done", job.error
    assert len(seen) >= 2, seen  # two distinct steps read from the state file as it trained
    assert job.history["step"] == list(range(100, 2001, 100))
    assert all(v is not None and v > 0 for v in job.history["val"])
    assert len(job.losses["step"]) >= 2 and job.total_steps == 2000
    assert job.public()["seconds_left"] == 0.0 and job.public()["elapsed"] > 0
    assert load_checkpoint(runner.out_dir / "quick.safetensors").meta.model_type == "mlp"


def test_cancel_stops_the_job_and_leaves_no_file(runner):
    job = runner.submit("mlp", "never", NAMES, options("mlp", steps=100_000, warmup=10))
    job = wait_for(runner, job.id, lambda j: j.step > 0)
    pid = job.pid
    job = runner.cancel(job.id)
    assert job.state == "cancelled" and job.finished
    wait_for(runner, job.id, lambda j: job.id not in runner.procs)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert user_files(runner.out_dir) == []


def test_cancel_of_a_queued_job_means_it_never_runs(runner):
    first = runner.submit("mlp", "first", NAMES, options("mlp", steps=100_000, warmup=10))
    wait_for(runner, first.id, lambda j: j.state == "running")
    second = runner.submit("bigram", "second", NAMES, options("bigram"))
    assert runner.cancel(second.id).state == "cancelled"
    runner.cancel(first.id)
    time.sleep(0.5)  # the loop may look at the queue again: the cancelled job stays so
    assert runner.get(second.id).state == "cancelled" and user_files(runner.out_dir) == []


def test_a_job_process_killed_with_sigkill_is_marked_interrupted_and_leaves_no_file(runner):
    job = runner.submit("mlp", "killed", NAMES, options("mlp", steps=100_000, warmup=10))
    job = wait_for(runner, job.id, lambda j: j.step > 0)
    leftover = runner.out_dir / ".killed.safetensors.x1y2.tmp"  # as a save cut short leaves
    leftover.write_bytes(b"half")
    os.kill(job.pid, signal.SIGKILL)
    job = wait_for(runner, job.id, lambda j: j.final)
    assert job.state == "interrupted" and job.error == "the job process was killed by signal 9"
    wait_for(runner, job.id, lambda j: not leftover.exists())
    assert user_files(runner.out_dir) == []


def test_the_wall_time_cap_fails_the_job_saying_so(tmp_path):
    runner = Runner(tmp_path / "users", max_seconds=0)
    runner.start()
    try:
        job = runner.submit("mlp", "slow", NAMES, options("mlp", steps=1000, warmup=10))
        job = wait_for(runner, job.id, lambda j: j.final)
    finally:
        runner.stop()
    assert job.state == "failed"
    assert "wall-time cap of 0 s (NAMELAB_TRAIN_MAX_SECONDS) at step 1 of 1,000" in job.error
    assert user_files(tmp_path / "users") == []


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_server_that_starts_marks_a_job_whose_process_is_gone_interrupted(tmp_path):
    jobs = Jobs.beside(tmp_path / "users")
    now = time.time()
    here = JobState(id="here", kind="bigram", name="a", state="running", host=socket.gethostname(),
                    pid=dead_pid(), started=now, heartbeat=now)
    silent = JobState(id="silent", kind="bigram", name="b", state="running", host="elsewhere",
                      pid=1, started=now - 100, heartbeat=now - STALE - 1)
    alive = JobState(id="alive", kind="bigram", name="c", state="running", host="elsewhere",
                     pid=1, started=now, heartbeat=now)
    for job in (here, silent, alive):
        jobs.create(job, ["anna", "bob"])
    runner = Runner(tmp_path / "users")
    runner.recover(at_start=True)
    assert jobs.get("here").state == "interrupted" and jobs.get("silent").state == "interrupted"
    assert "stopped while it ran" in jobs.get("here").error
    assert jobs.get("alive").state == "running"  # another replica's, beating: left alone


def test_the_state_survives_and_any_reader_of_the_folder_reads_it(runner, tmp_path):
    job = runner.submit("bigram", "shared", NAMES, options("bigram"))
    wait_for(runner, job.id, lambda j: j.final)
    other = Runner(runner.out_dir)  # a replica, or the server after a restart
    assert other.get(job.id).state == "done" and other.get(job.id).model == "shared"
    assert not [p for p in runner.jobs.folder.iterdir() if p.suffix == ".tmp"]


def test_two_replicas_never_claim_one_job(tmp_path):
    jobs = Jobs.beside(tmp_path / "users")
    jobs.create(JobState(id="one", kind="bigram", name="a"), ["anna", "bob"])
    assert [Jobs.beside(tmp_path / "users").claim("one") for _ in range(3)] == [True, False,
                                                                                  False]


def test_a_name_taken_by_a_model_or_a_job_is_refused(runner):
    (runner.out_dir / "mine.safetensors").write_bytes(b"x")
    with pytest.raises(NameTaken, match="'mine' is taken by a model"):
        runner.submit("bigram", "mine", NAMES, options("bigram"))
    with pytest.raises(NameTaken, match="'shipped' is taken by a model"):
        runner.submit("bigram", "shipped", NAMES, options("bigram"), served={"shipped"})
    job = runner.submit("mlp", "busy", NAMES, options("mlp", steps=100_000, warmup=10))
    with pytest.raises(NameTaken, match=f"'busy' is taken by training job {job.id}"):
        runner.submit("bigram", "busy", NAMES, options("bigram"))
    runner.cancel(job.id)


def test_a_full_queue_is_refused_with_a_time_to_retry(tmp_path):
    runner = Runner(tmp_path / "users", max_queue=2)  # not started: every job stays queued
    for name in ("a", "b"):
        runner.submit("bigram", name, NAMES, options("bigram"))
    with pytest.raises(QueueFull, match="queue is full.*NAMELAB_TRAIN_QUEUE=2") as e:
        runner.submit("bigram", "c", NAMES, options("bigram"))
    assert e.value.retry_after >= 1


def test_the_save_a_job_makes_never_replaces_a_file_that_appeared_meanwhile(tmp_path, models_dir):
    from app.store.checkpoints import read_tensors, write_tensors
    from app.store.schema import CheckpointError

    source = models_dir / "bigram.safetensors"
    tensors, meta = read_tensors(source), load_checkpoint(source).meta
    target = tmp_path / "pets.safetensors"
    target.write_bytes(b"someone else's")
    with pytest.raises(CheckpointError, match="already exists"):
        write_tensors(target, tensors, meta, replace=False)
    assert target.read_bytes() == b"someone else's" and user_files(tmp_path) == [target.name]
    write_tensors(tmp_path / "free.safetensors", tensors, meta, replace=False)
    assert load_checkpoint(tmp_path / "free.safetensors").meta == meta


def test_one_job_at_a_time_per_host_counts_every_server_process_of_the_host(runner):
    """uvicorn's workers each have a runner: the host's cap holds across them."""
    first = runner.submit("mlp", "first", NAMES, options("mlp", steps=100_000, warmup=10))
    wait_for(runner, first.id, lambda j: j.state == "running")
    second = runner.submit("bigram", "second", NAMES, options("bigram"))
    other = Runner(runner.out_dir, max_jobs=1)  # another worker of the same host
    other.start_next()
    assert other.procs == {} and runner.get(second.id).state == "queued"
    runner.cancel(first.id)
    wait_for(runner, second.id, lambda j: j.state == "done")


def test_the_oldest_ended_jobs_are_removed_past_the_cap(tmp_path, monkeypatch):
    monkeypatch.setattr("app.store.runner.KEEP_JOBS", 2)
    jobs = Jobs.beside(tmp_path / "users")
    for i, state in enumerate(["done", "failed", "queued", "cancelled", "done"]):
        jobs.create(JobState(id=f"j{i}", kind="bigram", name=f"m{i}", state=state, created=i),
                    ["anna", "bob"])
    Runner(tmp_path / "users").prune()
    assert [j.id for j in jobs.all()] == ["j2", "j3", "j4"]  # the queued one is never removed
    assert sorted(p.name for p in jobs.folder.iterdir()) == [
        f"j{i}.{ext}" for i in (2, 3, 4) for ext in ("json", "txt")]


# The job process, its save made to stop between publishing the checkpoint (the hard link) and
# removing its temporary name: the parent kills it there with SIGKILL.
BLOCK_AFTER_LINK = """
import os, sys, time
real_link = os.link
def announced_link(src, dst):
    real_link(src, dst)
    print("LINKED", flush=True)
    time.sleep(600)
os.link = announced_link
from app.store.jobs import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_job_killed_after_publishing_its_model_is_done_and_leaves_no_temporary_file(tmp_path):
    users = tmp_path / "users"
    jobs = Jobs.beside(users)
    job = JobState(id="late", kind="bigram", name="pets", data=NAMES.describe(),
                   options=options("bigram").as_dict())
    jobs.create(job, NAMES.words)
    proc = subprocess.Popen([sys.executable, "-c", BLOCK_AFTER_LINK, "run",
                             str(jobs.path("late")), str(users)], cwd=ROOT, stdout=subprocess.PIPE)
    with proc.stdout:
        assert proc.stdout.readline().strip() == b"LINKED"
        proc.kill()
        proc.wait()
    assert [p.suffix for p in users.iterdir() if p.name != ".jobs"].count(".tmp") == 1

    class Ended:  # what the runner knows of a process that exited
        exitcode = proc.returncode

    Runner(users).ended("late", Ended())
    job = jobs.get("late")
    assert job.state == "done" and job.model == "pets"
    assert user_files(users) == ["pets.safetensors"]
    assert load_checkpoint(users / "pets.safetensors").meta.model_type == "bigram"


# A server in miniature: a runner in a process of its own, running one long MLP job.
SERVER = """
import sys, time
from pathlib import Path
from app.lm import KINDS
from app.store.jobinput import check_options, names_from_list
from app.store.runner import Runner
from tests.conftest import TINY_NAMES

if __name__ == "__main__":
    runner = Runner(Path(sys.argv[1]))
    runner.start()
    options = check_options(KINDS["mlp"], {"steps": 100_000, "warmup": 10}, 100_000, 2_000_000)
    job = runner.submit("mlp", "long", names_from_list(TINY_NAMES * 4), options)
    print(job.id, flush=True)
    time.sleep(600)
"""


def test_a_job_whose_server_is_killed_with_sigkill_ends_itself_interrupted(tmp_path):
    users = tmp_path / "users"
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    server = subprocess.Popen([sys.executable, str(script), str(users)], cwd=ROOT,
                              stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    with server.stdout:
        job_id = server.stdout.readline().decode().strip()
        jobs = Jobs.beside(users)
        job = wait_for(jobs, job_id, lambda j: j.step > 0)
        server.kill()
        server.wait()
    job = wait_for(jobs, job_id, lambda j: j.final)  # the job process saw its server go
    assert job.state == "interrupted" and job.error == "the server that ran the job stopped"
    with pytest.raises(ProcessLookupError):
        wait_for(jobs, job_id, lambda j: os.kill(job.pid, 0) and False, deadline=10)
    assert user_files(users) == []
