"""The server's side of training jobs: a bounded queue, at most `max_jobs` job processes at a
time, cancelling, and noticing jobs whose process is gone.

One thread runs the loop: reap the job processes that ended (a process that died without
writing a final state, kill -9 or a crash, leaves its job `interrupted` and its temporary file
removed; past the wall-time cap plus a grace the process is killed and the job `failed`); start
the oldest queued job if a slot is free, after claiming it (Jobs.claim: O_EXCL, so replicas
sharing the folder never run one job twice); mark `interrupted` a running job whose process is
gone (on this host, its pid; on any, a heartbeat older than jobs.STALE), which is what a
server that starts finds after a crash.

The job processes come from a fork server that has imported torch and the trainer once
(multiprocessing's "forkserver", preloaded): a job starts in milliseconds rather than the
second an interpreter takes to import torch, so a bigram is served within 2 s of its request.
The fork server is single-threaded, so forking it is safe, and it exits when the server does:
its children then see their parent change and end themselves (app/store/jobs.py, `beat`).
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from app.store.checkpoints import checkpoint_path
from app.store.jobinput import Names, Options
from app.store.jobs import STALE, Jobs, JobState, alive, leftovers, run

log = logging.getLogger("namelab.jobs")
POLL = 0.05  # seconds between two looks at the job processes while one runs
IDLE_POLL = 0.5  # ... while none runs (a submit wakes the loop at once)
GRACE = 30.0  # seconds past its wall-time cap before a job process is killed
CANCEL_WAIT = 10.0  # seconds a cancel waits for the job to say it has stopped
KEEP_JOBS = 200  # ended jobs whose state is kept (the oldest beyond are removed)


class NameTaken(ValueError):
    """The new model's name is a model's or another job's (409)."""


class QueueFull(RuntimeError):
    """As many jobs wait as the queue holds (429, Retry-After: `retry_after` seconds)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnknownJob(LookupError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"no training job {job_id!r}")
        self.job_id = job_id


def _context():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["app.store.jobs", "app.store.training", "app.store.jobinput"])
    return ctx


class Runner:
    """Training jobs of one server: submit, get, cancel; `start`/`stop` with the server."""

    def __init__(self, user_models_dir: Path | str, max_jobs: int = 1, max_queue: int = 8,
                 max_seconds: float = 900.0,
                 on_done: Callable[[JobState, Path], None] | None = None) -> None:
        self.out_dir = Path(user_models_dir)
        self.jobs = Jobs.beside(self.out_dir)
        self.max_jobs, self.max_queue, self.max_seconds = max_jobs, max_queue, max_seconds
        self.on_done = on_done
        self.procs: dict[str, multiprocessing.process.BaseProcess] = {}
        self.lock = threading.Lock()  # submissions against each other (the queue's bound)
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.host = socket.gethostname()

    # -- the service -------------------------------------------------------------------------

    def submit(self, kind: str, name: str, names: Names, options: Options,
               served: frozenset[str] | set[str] = frozenset()) -> JobState:
        """Queue a job (NameTaken, QueueFull), its state as written."""
        with self.lock:
            active = [j for j in self.jobs.all() if not j.final]
            other = next((j for j in active if j.name == name), None)
            if other is not None:
                raise NameTaken(f"model name {name!r} is taken by training job {other.id} "
                                f"({other.state}); choose another name")
            if name in served or checkpoint_path(self.out_dir, name).exists():
                raise NameTaken(f"model name {name!r} is taken by a model already served; "
                                f"choose another name")
            queued = [j for j in active if j.state == "queued"]
            if len(queued) >= self.max_queue:
                raise QueueFull(f"the training queue is full ({len(queued)} jobs wait; "
                                f"NAMELAB_TRAIN_QUEUE={self.max_queue}); try again later",
                                self.retry_after(active))
            job = JobState(id=uuid.uuid4().hex[:16], kind=kind, name=name, data=names.describe(),
                           options=options.as_dict(), total_steps=options.steps,
                           max_seconds=self.max_seconds)
            self.jobs.create(job, names.words)
        log.info("job %s queued: %s %s on %s", job.id, kind, name, names.source)
        self.wake.set()
        return job

    def retry_after(self, active: list[JobState]) -> int:
        """Seconds until a place in the queue is likely free: the running jobs' time left."""
        left = [j.seconds_left() for j in active if j.state == "running"]
        known = [s for s in left if s is not None]
        return max(1, min(int(min(known)) + 1 if known else 10, 3600))

    def get(self, job_id: str) -> JobState:
        try:
            return self.jobs.get(job_id)
        except KeyError:
            raise UnknownJob(job_id) from None

    def cancel(self, job_id: str) -> JobState:
        """Stop a queued or running job (its state once it has stopped, or a final one as is)."""
        job = self.get(job_id)
        if job.final:
            return job
        if job.state == "queued" and self.jobs.claim(job_id):  # it is ours now: nobody runs it
            job.state, job.finished, job.error = "cancelled", time.time(), "cancelled"
            self.jobs.save(job)
            return job
        self.jobs.ask_cancel(job_id)  # whichever replica runs it sees this at a heartbeat
        proc = self.procs.get(job_id)
        if proc is not None and proc.pid:
            os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + CANCEL_WAIT
        while time.monotonic() < deadline:
            job = self.get(job_id)
            if job.final:
                break
            time.sleep(POLL)
        return job

    # -- the loop ----------------------------------------------------------------------------

    def start(self) -> None:
        self.jobs.folder.mkdir(parents=True, exist_ok=True)
        self.recover(at_start=True)
        self.thread = threading.Thread(target=self.loop, name="training-jobs", daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop and this server's job processes (their jobs end `interrupted`)."""
        self.stopping.set()
        self.wake.set()
        if self.thread is not None:
            self.thread.join(timeout)
        for proc in self.procs.values():
            if proc.is_alive():
                proc.terminate()
        for job_id, proc in list(self.procs.items()):
            proc.join(timeout)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout)
            self.ended(job_id, proc)
        self.procs.clear()

    def loop(self) -> None:
        try:  # the fork server imports torch now, not when the first job is asked for
            _context()
            multiprocessing.forkserver.ensure_running()
        except Exception:  # noqa: BLE001 (the first job will start it, or say why not)
            log.exception("training jobs: the fork server did not start")
        last_check = 0.0
        while not self.stopping.is_set():
            try:
                self.reap()
                self.start_next()
                if time.monotonic() - last_check > STALE / 3:
                    self.recover()
                    self.prune()
                    last_check = time.monotonic()
            except Exception:  # noqa: BLE001 (the loop outlives a bad file or a full disk)
                log.exception("training jobs: the loop failed a round")
            self.wake.wait(POLL if self.procs else IDLE_POLL)
            self.wake.clear()

    def start_next(self) -> None:
        """Start the oldest queued job if this host runs fewer than max_jobs (its other server
        processes' jobs count: uvicorn's workers share the host's cores)."""
        if len(self.procs) >= self.max_jobs:
            return
        jobs = self.jobs.all()
        here = [j for j in jobs if not j.final and (self.claim_owner(j.id) or ("",))[0]
                == self.host]
        if len(here) >= self.max_jobs:
            return
        for job in jobs:
            if job.state != "queued" or self.jobs.claimed(job.id):
                continue
            if not self.jobs.claim(job.id):
                continue  # another replica took it just now
            proc = _context().Process(target=run, args=(str(self.jobs.path(job.id)),
                                                        str(self.out_dir), os.getpid()),
                                      name=f"namelab-job-{job.id}")
            proc.start()
            self.procs[job.id] = proc
            log.info("job %s started (pid %s)", job.id, proc.pid)
            return

    def reap(self) -> None:
        now = time.time()
        for job_id, proc in list(self.procs.items()):
            if proc.is_alive():
                job = self.jobs.get(job_id)
                if job.started and now - job.started > job.max_seconds + GRACE:
                    proc.kill()  # the job's own check missed it (counting has no steps)
                    proc.join()
                    self.ended(job_id, proc, f"killed past the wall-time cap of "
                                             f"{job.max_seconds:g} s (NAMELAB_TRAIN_MAX_SECONDS)")
                    del self.procs[job_id]
                continue
            proc.join()
            del self.procs[job_id]
            self.ended(job_id, proc)

    def ended(self, job_id: str, proc, why: str | None = None) -> None:
        """A job process has exited: its job's final state, written here if it wrote none."""
        job = self.jobs.get(job_id)
        published = checkpoint_path(self.out_dir, job.name)
        if not job.final and job.started and published.exists() and \
                published.stat().st_mtime >= job.started:
            # killed after its model was published (atomically: the file is whole), before it
            # could say so: the work is not lost
            job.state, job.model, job.finished = "done", job.name, time.time()
            self.jobs.save(job)
        if not job.final:
            code = proc.exitcode
            how = (f"was killed by signal {-code}" if code is not None and code < 0
                   else f"exited with code {code}")
            if self.jobs.cancel_asked(job_id):
                job.state, job.error = "cancelled", "cancelled"
            elif why:
                job.state, job.error = "failed", why
            else:
                job.state, job.error = "interrupted", f"the job process {how}"
            job.finished = time.time()
            self.jobs.save(job)
        self.clean(job)
        log.info("job %s %s%s", job.id, job.state, f": {job.error}" if job.error else "")
        if job.state == "done" and self.on_done is not None:
            self.on_done(job, checkpoint_path(self.out_dir, job.name))

    def clean(self, job: JobState) -> None:
        """No temporary file of an ended job's checkpoint is left behind."""
        for path in leftovers(self.out_dir, job.name):
            path.unlink(missing_ok=True)

    def prune(self) -> None:
        """Bounded storage: the files of the oldest ended jobs past KEEP_JOBS go."""
        ended = [j for j in self.jobs.all() if j.final]
        for job in ended[: max(0, len(ended) - KEEP_JOBS)]:
            for suffix in (".json", ".txt", ".cancel", ".claim"):
                self.jobs.path(job.id, suffix).unlink(missing_ok=True)

    def recover(self, at_start: bool = False) -> None:
        """Jobs marked running whose process is gone become `interrupted` (not forgotten):
        on this host, their pid is not alive; on any host, their heartbeat is STALE. At start,
        a queued job this host claimed and never started is interrupted too."""
        now = time.time()
        for job in self.jobs.all():
            if job.final or job.id in self.procs:
                continue
            if job.state == "running":
                here = job.host == self.host
                gone = (here and not alive(job.pid)) or now - (job.heartbeat or 0) > STALE
            else:
                owner = self.claim_owner(job.id)
                gone = at_start and owner is not None and owner[0] == self.host and (
                    owner[1] == os.getpid() or not alive(owner[1]))
            if gone:
                job.error = ("the server or the job process stopped while it "
                             f"{'ran' if job.state == 'running' else 'was starting'}")
                job.state, job.finished = "interrupted", now
                self.jobs.save(job)
                self.clean(job)
                log.warning("job %s interrupted: %s", job.id, job.error)

    def claim_owner(self, job_id: str) -> tuple[str, int] | None:
        try:
            host, pid, _ = self.jobs.path(job_id, ".claim").read_text().split()
            return host, int(pid)
        except (OSError, ValueError):
            return None
