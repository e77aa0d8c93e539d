"""The /train page (issue 24, item 3): from the form's POST to the job's page showing the new
model's ten names, and how often a running job's page has news.

    python bench/bench_train_page.py [--data ../shared/data/names.txt] [--steps 300]

A server (`uvicorn`, the project's models/, a users' folder of its own in a temporary folder)
is started. Then, as a browser would without script:
1. the form is posted with a bigram of `--data` (pasted, one name per line) and the job's page
   read every 50 ms until it shows the ten names: the time from the POST to the model trained,
   served and sampled on the page;
2. the form is posted with an MLP of `--steps` steps (eval interval 50) on 300 made-up names
   (tests/pages/test_browser_train.py) and the job's live part (GET /train/{id}/live, what
   static/train.js swaps in) read every 100 ms: the distinct step counts it showed and the
   time to the ten names.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.live import live_process  # noqa: E402
from tests.pages.test_browser_train import made_up_names  # noqa: E402

LIMIT = 600.0  # seconds a job may take here before the script gives up


def post(base: str, **fields: str) -> str:
    form = {"dataset": "", "steps": "", "eval_interval": "", **fields}
    r = httpx.post(base + "/train", data=form, files={"file": ("", b"")}, timeout=120)
    assert r.status_code == 303, r.text[-2000:]
    return base + r.headers["location"]


def follow(url: str, every: float) -> tuple[float, list[str]]:
    """Seconds until the page shows ten names; the step counts it showed on the way."""
    t0, steps = time.perf_counter(), []
    while time.perf_counter() - t0 < LIMIT:
        page = httpx.get(url, timeout=60).text
        step = re.search(r'id="job-step">([^<]*)<', page)
        if step and (not steps or steps[-1] != step.group(1)):
            steps.append(step.group(1))
        if page.count("<li>", page.find('id="job-names"')) >= 10 and 'id="job-names"' in page:
            return time.perf_counter() - t0, steps
        time.sleep(every)
    raise SystemExit(f"{url}: no ten names after {LIMIT:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "names.txt"))
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    names = Path(args.data).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp, live_process(
            ROOT / "models", env={"NAMELAB_USER_MODELS_DIR": f"{tmp}/users"}) as (base, _):
        t0 = time.perf_counter()
        url = post(base, text=names, kind="bigram", name="benchbigram")
        posted = time.perf_counter() - t0
        seconds, _ = follow(url, 0.05)
        print(f"bigram of {len(names.split()):,} names: POST {posted:.2f} s, then the page "
              f"shows its ten names after {seconds:.2f} s (total {posted + seconds:.2f} s)")
        t0 = time.perf_counter()
        url = post(base, text="\n".join(made_up_names()), kind="mlp", name="benchmlp",
                   steps=str(args.steps), eval_interval="50")
        seconds, steps = follow(url + "/live", 0.1)
        total = time.perf_counter() - t0
        print(f"mlp of 300 names, {args.steps} steps: ten names after {total:.1f} s; the live "
              f"part showed {len(steps)} distinct step counts: {', '.join(steps)}")


if __name__ == "__main__":
    main()
