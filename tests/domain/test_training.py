"""app/domain/training.py: one source of names, and each kind's time from this machine's jobs."""

from __future__ import annotations

import pytest

from app.domain.training import estimates, job_view, names_of
from app.lm import KINDS
from app.store.jobinput import BadJobInput
from app.store.jobs import JobState


def test_the_names_come_one_way_only():
    assert names_of(text="Anna\nBob\n").words == ["anna", "bob"]
    assert names_of(file=(b"anna\nbob", "x.txt")).source == "the file x.txt"
    with pytest.raises(BadJobInput, match="got names and text"):
        names_of(names=["a", "b"], text="a\nb")
    with pytest.raises(BadJobInput, match="got none"):
        names_of(text="")


def job(kind: str, seconds: float, steps: int, finished: float, state: str = "done"):
    return JobState(id=f"j{finished:g}", kind=kind, name="m", state=state, started=finished -
                    seconds, finished=finished, total_steps=steps)


def test_a_kinds_estimate_is_the_median_pace_of_its_recent_jobs_at_its_default_steps():
    mlp_steps = KINDS["mlp"].training.steps
    jobs = [job("mlp", 10, 100, 1), job("mlp", 40, 100, 2), job("mlp", 20, 100, 3),
            job("mlp", 999, 100, 4, state="failed"), job("bigram", 0.5, 0, 5)]
    got = estimates(jobs)
    assert got["mlp"] == 0.2 * mlp_steps  # the median of 0.1, 0.4 and 0.2 s a step
    assert got["bigram"] == 0.5 and got["transformer"] is None
    assert estimates(jobs, recent=1)["mlp"] == 0.2 * mlp_steps  # the latest alone


def test_a_done_jobs_view_links_to_what_its_kind_has():
    view = job_view(job("bigram", 1, 0, 1))
    assert view["links"]["bigram"] == "/bigram?model=m" and "embeddings" not in view["links"]
    assert view["url"] == "/api/train/j1" and view["seconds_left"] == 0.0
    assert "bigram" not in job_view(job("mlp", 1, 10, 1))["links"]
