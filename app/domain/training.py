"""Training jobs as the API and the /train page ask for them: one submission from a JSON body or
a form's fields, and a job's state as the dict both answer with.

Everything a request sends is checked here, in the order that costs least (kind, name, then the
names, then the options with the names' alphabet), by the pure checks of app/store/jobinput.py;
the queue and the names already taken are the runner's (app/store/runner.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from app.lm import KINDS
from app.store import jobinput
from app.store.jobinput import BadJobInput, Names
from app.store.jobs import JobState
from app.store.runner import Runner

# The names, one of these ways: a list, pasted text (one per line), an uploaded file, a spec.
SOURCES = ("names", "text", "file", "dataset")
FORM_FIELDS = ("kind", "name", "text", "dataset", "file")  # a form's fields, not options


class TrainingOff(RuntimeError):
    """This server trains no models (503): where jobs write is not writable."""


@dataclass(frozen=True)
class Training:
    """What a submission needs of the server: its runner, the names it serves, its caps."""

    runner: Runner
    served: Callable[[], Iterable[str]]  # the names of the models served now
    check_room: Callable[[], None]  # raises when no user model may be added
    max_steps: int
    max_params: int


def names_of(names: Any = None, text: str | None = None, file: tuple[bytes, str] | None = None,
             dataset: str | None = None) -> Names:
    """The job's names from the one source given (BadJobInput naming the problem)."""
    given = [key for key, value in zip(SOURCES, (names, text, file, dataset), strict=True)
             if value is not None and value != ""]
    if len(given) != 1:
        raise BadJobInput("send the names one way: " + " or ".join(SOURCES) + "; got "
                          + (" and ".join(given) or "none"))
    if names is not None:
        return jobinput.names_from_list(names)
    if text:
        return jobinput.names_from_list(text.splitlines())
    if file is not None:
        return jobinput.names_from_file(*file)
    return jobinput.names_from_spec(dataset)


def submit(training: Training, kind: Any, name: Any, options: Any = None,
           **source: Any) -> JobState:
    """Queue a job: kind, model name, names (`source`: names_of's keywords), options."""
    k = jobinput.check_kind(kind)
    name = jobinput.check_model_name(name)
    names = names_of(**source)
    vocab_size = len(set("".join(names.words))) + 1
    checked = jobinput.check_options(k, options, training.max_steps, training.max_params,
                                     vocab_size)
    training.check_room()
    return training.runner.submit(k.name, name, names, checked, served=set(training.served()))


def submit_form(training: Training, fields: dict[str, str],
                file: tuple[bytes, str] | None = None) -> JobState:
    """Queue a job from a form: its fields (kind, name, text or dataset, and an option per
    field, as text) and an uploaded file, if any."""
    kind = jobinput.check_kind(fields.get("kind"))
    options = jobinput.form_options(kind, {k: v for k, v in fields.items()
                                           if k not in FORM_FIELDS})
    return submit(training, kind.name, fields.get("name"), options, text=fields.get("text"),
                  dataset=fields.get("dataset") or None, file=file)


def job_view(job: JobState) -> dict[str, Any]:
    """A job's state as the API answers it: the state file's fields, the elapsed time and the
    time left, its URLs, and once done the new model's."""
    out = job.public()
    out["url"] = f"/api/train/{job.id}"
    out["events"] = f"/api/train/{job.id}/events"
    out["links"] = model_links(job) if job.state == "done" else {}
    return out


def model_links(job: JobState) -> dict[str, str]:
    """Where the new model is served: its card, its sampling and scoring pages, and the pages of
    what its kind has (a bigram table, embeddings)."""
    kind = KINDS[job.kind]
    links = {"api": f"/api/models/{job.name}", "card": f"/models/{job.name}",
             "sample": f"/sample?model={job.name}", "score": f"/score?model={job.name}"}
    if kind.has_table:
        links["bigram"] = f"/bigram?model={job.name}"
    if kind.has_embeddings:
        links["embeddings"] = f"/embeddings?model={job.name}"
    return links


def estimates(jobs: Iterable[JobState], recent: int = 5) -> dict[str, float | None]:
    """Each kind's expected seconds on this machine with its default steps, from its `recent`
    latest jobs that ended done (their seconds per step; a counted kind: their seconds); None
    for a kind not trained here yet (the page then says so rather than guess)."""
    done: dict[str, list[JobState]] = {}
    for job in sorted(jobs, key=lambda j: j.finished or 0):
        if job.state == "done" and job.started and job.finished:
            done.setdefault(job.kind, []).append(job)
    out: dict[str, float | None] = {}
    for name, kind in jobinput.TRAINABLE.items():
        last = done.get(name, [])[-recent:]
        if not last:
            out[name] = None
            continue
        steps = kind.training.steps if kind.training else 0
        per = sorted(j.elapsed() / j.total_steps if steps and j.total_steps else j.elapsed()
                     for j in last)
        out[name] = round(per[len(per) // 2] * (steps or 1), 1)
    return out
