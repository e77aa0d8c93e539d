"""Training jobs on disk: one JSON state file per job, and the job process that trains.

A job lives in the jobs folder beside the users' models (`<user models>/.jobs/`), as files any
replica sharing the folder can read:

  <id>.json    its state (JobState), always replaced atomically (temporary file, fsync, rename),
               so a reader never sees half of one and the state survives a restart
  <id>.txt     its names, normalised, one per line (written at submission, read by the job)
  <id>.claim   created with O_EXCL by the server that runs it: two replicas never run one job
  <id>.cancel  created to cancel it: the job process looks for it at every heartbeat, so a
               cancel reaches a job whichever replica runs it

The job process (`run`, started by app/store/runner.py, or `python -m app.store.jobs run
<state file>` by hand) trains at a lower CPU priority with one torch thread, writes its progress
into the state file (throttled) and a heartbeat every HEARTBEAT seconds, and publishes the
checkpoint through the atomic save without ever replacing a file (app/store/checkpoints.py,
`replace=False`). Whoever ends a job writes its final state: the process itself (done, failed,
cancelled, or interrupted on SIGTERM or when its server is gone), or the server when the process
died without a word (kill -9): then `interrupted`, and its temporary file is removed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.store.files import write_atomically

State = Literal["queued", "running", "done", "failed", "cancelled", "interrupted"]
FINAL = frozenset({"done", "failed", "cancelled", "interrupted"})
JOBS_FOLDER = ".jobs"
HEARTBEAT = 1.0  # seconds between a running job's heartbeats
STALE = 15.0  # a running job whose heartbeat is older than this has no process left
WRITE_EVERY = 0.5  # seconds between two progress writes of the state file, at least
MAX_LOSSES = 1000  # points of the running training loss kept in a state (one per 50 steps)


class JobState(BaseModel):
    """Everything a reader of a job needs, as the JSON file holds it (times: Unix seconds)."""

    id: str
    kind: str
    name: str  # the new model's name
    state: State = "queued"
    data: dict[str, Any] = Field(default_factory=dict)  # app/store/jobinput.Names.describe
    options: dict[str, Any] = Field(default_factory=dict)
    step: int = 0
    total_steps: int = 0  # 0: a kind trained by counting, in one go
    # validation points: the mean training loss since the previous one, the validation loss
    history: dict[str, list] = Field(default_factory=lambda: {"step": [], "train": [], "val": []})
    # the training loss as it runs (one point every 50 steps)
    losses: dict[str, list] = Field(default_factory=lambda: {"step": [], "loss": []})
    max_seconds: float = 900.0  # the wall time the job may take (NAMELAB_TRAIN_MAX_SECONDS)
    created: float = Field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    heartbeat: float | None = None
    error: str | None = None  # one line, when failed, cancelled or interrupted
    model: str | None = None  # the new model's name, once done
    metrics: dict[str, float | None] = Field(default_factory=dict)  # train/val/test NLL, done
    pid: int | None = None
    host: str | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL

    def elapsed(self, now: float | None = None) -> float:
        if self.started is None:
            return 0.0
        end = self.finished or (now if now is not None else time.time())
        return max(0.0, end - self.started)

    def seconds_left(self, now: float | None = None) -> float | None:
        """The remaining steps at the pace so far; None before the first step or when final."""
        if self.final or not self.total_steps or self.step <= 0:
            return 0.0 if self.state == "done" else None
        per_step = self.elapsed(now) / self.step
        return round(per_step * (self.total_steps - self.step), 1)

    def public(self) -> dict[str, Any]:
        """The state as the API answers it: the file's fields and the derived times."""
        out = self.model_dump()
        out["elapsed"] = round(self.elapsed(), 2)
        out["seconds_left"] = self.seconds_left()
        return out


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace `path` atomically with the JSON of `data`."""
    write_text_atomic(path, json.dumps(data))


def write_text_atomic(path: Path, text: str) -> None:
    """Replace `path` atomically with `text` (UTF-8)."""
    write_atomically(path, text.encode())


class Jobs:
    """The jobs folder: create, read and list job states; claim and cancel markers."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)

    @classmethod
    def beside(cls, user_models_dir: Path | str) -> Jobs:
        return cls(Path(user_models_dir) / JOBS_FOLDER)

    def path(self, job_id: str, suffix: str = ".json") -> Path:
        if not job_id.isalnum():  # ids are hex: nothing else reaches a path
            raise KeyError(job_id)
        return self.folder / f"{job_id}{suffix}"

    def create(self, job: JobState, words: list[str]) -> JobState:
        self.folder.mkdir(parents=True, exist_ok=True)
        names = self.path(job.id, ".txt")
        write_text_atomic(names, "\n".join(words))
        self.save(job)
        return job

    def save(self, job: JobState) -> None:
        write_json(self.path(job.id), job.model_dump())

    def get(self, job_id: str) -> JobState:
        """The job's state (KeyError if there is none)."""
        try:
            text = self.path(job_id).read_text(encoding="utf-8")
        except (FileNotFoundError, KeyError):
            raise KeyError(job_id) from None
        return JobState.model_validate_json(text)

    def words(self, job_id: str) -> list[str]:
        return self.path(job_id, ".txt").read_text(encoding="utf-8").splitlines()

    def all(self) -> list[JobState]:
        """Every job, oldest first (a file that does not parse is skipped)."""
        jobs = []
        for path in self.folder.glob("*.json") if self.folder.is_dir() else []:
            try:
                jobs.append(JobState.model_validate_json(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue
        return sorted(jobs, key=lambda j: (j.created, j.id))

    def claim(self, job_id: str) -> bool:
        """Take the job for this process: True for exactly one caller, whichever replica."""
        try:
            fd = os.open(self.path(job_id, ".claim"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(f"{socket.gethostname()} {os.getpid()} {time.time():.3f}\n")
        return True

    def claimed(self, job_id: str) -> bool:
        return self.path(job_id, ".claim").exists()

    def ask_cancel(self, job_id: str) -> None:
        self.path(job_id, ".cancel").touch()

    def cancel_asked(self, job_id: str) -> bool:
        return self.path(job_id, ".cancel").exists()


def leftovers(out_dir: Path, name: str) -> list[Path]:
    """The temporary files an interrupted save of `name` may leave (checkpoints.write_tensors)."""
    return sorted(Path(out_dir).glob(f".{name}.safetensors.*.tmp"))


class Interrupted(BaseException):  # noqa: N818 (a signal, like KeyboardInterrupt)
    """SIGTERM reached the job process: unwinds the training (and any half-written file)."""


class JobProcess:
    """The job, in its own process: train, report, publish, say how it ended."""

    def __init__(self, state_file: Path, out_dir: Path, server: int | None = None) -> None:
        self.jobs = Jobs(state_file.parent)
        self.out_dir = out_dir
        self.job = self.jobs.get(state_file.stem)
        self.lock = threading.Lock()
        self.last_write = 0.0
        self.parent = os.getppid()
        self.server = server  # the pid of the server that started it, if one did
        # how the job ends when Interrupted unwinds it: (state, one-line reason)
        self.ending: tuple[State, str] = ("interrupted", "the job process got SIGTERM")
        # Once set, SIGTERM no longer stops the job: its model is being written, and a job
        # either publishes its model and says done or publishes nothing. Counting (a bigram)
        # takes a second: it is never stopped half-way.
        self.publishing = False

    def save(self, force: bool = False, **changes: Any) -> None:
        with self.lock:
            for key, value in changes.items():
                setattr(self.job, key, value)
            now = time.time()
            if force or now - self.last_write >= WRITE_EVERY:
                self.job.heartbeat = now
                self.jobs.save(self.job)
                self.last_write = now

    def progress(self, step: int, total: int, postfix: dict[str, float]) -> None:
        with self.lock:
            job = self.job
            job.step, job.total_steps = step, total
            if "val" in postfix or step == total:
                val = postfix.get("val")
                for key, value in (("step", step), ("train", round(postfix["loss"], 5)),
                                   ("val", None if val is None else round(val, 5))):
                    job.history[key].append(value)
            elif len(job.losses["step"]) < MAX_LOSSES:
                job.losses["step"].append(step)
                job.losses["loss"].append(round(postfix["loss"], 5))
        self.save(force="val" in postfix)
        if time.time() - (job.started or 0) > job.max_seconds:
            self.ending = ("failed", f"stopped at the wall-time cap of {job.max_seconds:g} s "
                                     f"(NAMELAB_TRAIN_MAX_SECONDS) at step {step:,} of "
                                     f"{total:,}; ask for fewer steps")
            raise Interrupted
        if step == total:  # trained: what is left (the metrics, the save) finishes
            self.publishing = True

    def beat(self) -> None:
        """Every HEARTBEAT seconds: the heartbeat, and whether to stop (a cancel asked, by any
        replica; the server gone, this process adopted by init)."""
        while True:
            time.sleep(HEARTBEAT)
            self.save(force=True)
            if self.jobs.cancel_asked(self.job.id):
                self.ending = ("cancelled", "cancelled")
            elif os.getppid() != self.parent or (self.server and not alive(self.server)):
                self.ending = ("interrupted", "the server that ran the job stopped")
            else:
                continue
            if not self.publishing:
                os.kill(os.getpid(), signal.SIGTERM)
            return

    def run(self) -> int:
        from app.data import Dataset
        from app.lm import KINDS
        from app.store.jobinput import MIN_SPLIT, SPLIT_SEED, split_options
        from app.store.training import train_to_checkpoint

        def on_term(signum, frame):
            if not self.publishing:  # else the job is as good as done: it ends done
                raise Interrupted

        signal.signal(signal.SIGTERM, on_term)
        job = self.job
        kind = KINDS[job.kind]
        self.publishing = kind.trains_by_counting
        self.save(force=True, state="running", started=time.time(), pid=os.getpid(),
                  host=socket.gethostname(),
                  total_steps=0 if kind.trains_by_counting else job.options["steps"])
        threading.Thread(target=self.beat, daemon=True, name="heartbeat").start()
        try:
            if self.jobs.cancel_asked(job.id):  # cancelled between its claim and now
                self.ending = ("cancelled", "cancelled")
                raise Interrupted
            options = split_options(kind, job.options)
            words = self.jobs.words(job.id)
            result = train_to_checkpoint(
                job.kind, Dataset(spec=job.data.get("spec", "names"), words=words),
                self.out_dir, job.name,
                split_seed=SPLIT_SEED if len(words) >= MIN_SPLIT else None,
                config=options.config, training=options.training, progress=self.progress,
                overwrite=False)
        except Interrupted:
            state, why = (("cancelled", "cancelled") if self.jobs.cancel_asked(job.id)
                          else self.ending)
            self.save(force=True, state=state, finished=time.time(), error=why)
            return 1
        except Exception as e:  # noqa: BLE001 (every failure ends the job, saying why)
            traceback.print_exc()
            self.save(force=True, state="failed", finished=time.time(),
                      error=one_line(f"{type(e).__name__}: {e}"))
            return 1
        metrics = result.meta.metrics.model_dump() if result.meta.metrics else {}
        self.save(force=True, state="done", finished=time.time(), model=job.name,
                  step=job.total_steps, metrics=metrics)
        return 0


def limit_resources() -> None:
    """A job shares the machine with the server: lower priority, one torch thread."""
    os.environ["OMP_NUM_THREADS"] = "1"
    os.nice(10)
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process (a forked child of a warm process)
        pass


def run(state_file: Path | str, out_dir: Path | str, server: int | None = None) -> int:
    """The job process's body: the job whose state is `state_file`, its checkpoint into
    `out_dir` (the users' models); `server`: the pid of the server whose job it is (when it
    is gone, the job ends itself, interrupted)."""
    limit_resources()
    return JobProcess(Path(state_file), Path(out_dir), server).run()


def alive(pid: int | None) -> bool:
    """Whether process `pid` exists (a zombie counts until its parent reaps it)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] != "run":
        print("usage: python -m app.store.jobs run <state file> <users' models folder>",
              file=sys.stderr)
        return 2
    return run(argv[1], argv[2])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
