"""Serves the sales explorer with gunicorn (4 workers) and drives it in headless Chromium.

For each source of frames (brain, then Parquet as before brain), it opens
the page, switches datasets, filters, changes the data and refreshes it,
and after each change asks every worker what it sees: all must answer with
the same data. Each callback is timed as the browser sees it: from the
click to the moment its answer is in the page.

    python examples/dash_app/drive.py                      # 10 million rows, both sources
    python examples/dash_app/drive.py --rows 300000 --screenshot docs/dash_app.png

Needs gunicorn, selenium, chromium and chromedriver (Debian: apt-get
install chromium chromium-driver). Every server, store and file it makes is
removed when it ends, also when it fails. brain-py/tests/test_dash_app.py
runs it with a small frame.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

APP_DIR = Path(__file__).resolve().parent
WORKERS = 4
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SERVED = re.compile(r"worker (\d+) · (.*?) · read ([\d,.]+) ms · callback ([\d,]+) ms · at ")
READERS = ("figure-served", "summary-served", "filtered-served")
LABELS = {
    "loaded-served": "load",
    "figure-served": "figure",
    "summary-served": "summary table",
    "filtered-served": "filter",
    "discount-served": "discount, written back",
}


def missing_tools() -> list[str]:
    """What this needs and does not find."""
    missing = [tool for tool in (CHROMIUM, CHROMEDRIVER) if not Path(tool).exists()]
    for module in ("selenium", "gunicorn"):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"python package {module}")
    return missing


# ---------------------------------------------------------------- the server


@dataclass
class Server:
    """gunicorn serving the app on a loopback port of its own."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def workers(self) -> set[int]:
        """The pids of the master's worker processes."""
        found = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                found.add(int(stat.parent.name))
        return found


@contextmanager
def gunicorn(env: dict[str, str], preload: bool = False) -> Iterator[Server]:
    """Starts the app under gunicorn on a free loopback port; stops it (and its workers) on exit."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))  # the kernel picks a free port; gunicorn inherits the socket
    listener.listen(128)
    port = listener.getsockname()[1]
    log = Path(tempfile.mkstemp(prefix="brain-dash-gunicorn-", suffix=".log")[1])
    binary = Path(sys.executable).with_name("gunicorn")
    args = [str(binary), "--workers", str(WORKERS), "--bind", f"fd://{listener.fileno()}",
            "--timeout", "600", "--graceful-timeout", "5", "app:server"]
    if preload:
        args.insert(1, "--preload")
    if "--no-control-socket" in subprocess.run([str(binary), "--help"], capture_output=True, text=True).stdout:
        args.insert(1, "--no-control-socket")  # gunicorn 23+: no socket in $HOME to share between runs
    with open(log, "wb") as out:
        process = subprocess.Popen(
            args, cwd=APP_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
            pass_fds=[listener.fileno()], start_new_session=True,
        )
    listener.close()
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 120
        while len(server.workers()) < WORKERS or not _answers(server.url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield server
    except BaseException:
        print(f"gunicorn's log:\n{log.read_text()[-5000:]}", file=sys.stderr)
        raise
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.unlink(missing_ok=True)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/_dash-layout", timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


# ---------------------------------------------------------------- the browser

# Records when each answer's line last changed, in the page's own clock.
WATCH = """
window.__marks = {};
for (const el of document.querySelectorAll('.served, .probe')) {
    new MutationObserver(() => { window.__marks[el.id] = performance.now(); })
        .observe(el, {childList: true, characterData: true, subtree: true});
}
"""
CLICK = """
window.__marks = {};
window.__clicked = performance.now();
document.querySelector(arguments[0]).click();
"""


@contextmanager
def chromium() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1180,1160", "--hide-scrollbars"):
        options.add_argument(arg)
    # Chromium leaves a singleton directory in its TMPDIR when the driver
    # quits it: give it one of its own, removed afterwards.
    scratch = tempfile.mkdtemp(prefix="brain-dash-chromium-")
    try:
        service = Service(CHROMEDRIVER, env={**os.environ, "TMPDIR": scratch})
        driver = webdriver.Chrome(service=service, options=options)
        try:
            yield driver
        finally:
            driver.quit()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@dataclass
class Answer:
    """One callback's line: which worker, what it saw, its costs."""

    worker: int
    seen: str
    read_ms: float
    callback_ms: float

    @classmethod
    def parse(cls, text: str) -> Answer:
        match = SERVED.search(text)
        if match is None:
            raise AssertionError(f"not an answer: {text!r}")
        worker, seen, read_ms, callback_ms = match.groups()
        return cls(int(worker), seen, float(read_ms.replace(",", "")), float(callback_ms.replace(",", "")))


@dataclass
class Page:
    driver: Any
    timeout: float
    checks: int = 0  # clicks of "Which workers?" so far

    def text(self, element_id: str) -> str:
        return str(self.driver.execute_script("return document.getElementById(arguments[0]).textContent", element_id))

    def wait(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.02)

    def marks(self) -> dict[str, float]:
        return dict(self.driver.execute_script("return Object.assign({}, window.__marks)"))

    def act(self, selector: str, answers: tuple[str, ...]) -> dict[str, tuple[float, Answer]]:
        """Clicks, then waits for `answers` to change and agree; returns each one's time since the click."""
        self.driver.execute_script(CLICK, selector)
        self.wait(lambda: set(answers) <= set(self.marks()) and self._agree(answers), f"{answers} after {selector}")
        clicked = float(self.driver.execute_script("return window.__clicked"))
        marks = self.marks()
        return {a: (marks[a] - clicked, Answer.parse(self.text(a))) for a in answers}

    def _agree(self, answers: tuple[str, ...]) -> bool:
        """Whether every reader shows the version and data the load (or the discount) wrote."""
        texts = {a: self.text(a) for a in answers}
        writers = [t for a, t in texts.items() if a not in READERS]
        if not writers:
            return all(SERVED.search(t) for t in texts.values())
        match = re.search(r"v(\d+): ([\d,]+ rows, revenue [\d,.]+)", writers[0])
        if match is None:
            return False
        written = f"v{match.group(1)}: {match.group(2)}"
        return all(written in t for a, t in texts.items() if a in READERS)

    def check_workers(self, expected: str, workers: set[int], rounds: int = 12) -> dict[int, str]:
        """Asks several workers at once what they see, until every worker answered; returns pid -> data."""
        seen: dict[int, str] = {}
        for _ in range(rounds):
            self.driver.execute_script(CLICK, "#check")
            self.checks += 1
            clicks = self.checks
            ids = [f'{{"index":{i},"type":"probe"}}' for i in range(8)]
            self.wait(lambda: all(self.text(i).startswith(f"check {clicks} ·") for i in ids), "every worker's answer")
            for element_id in ids:
                answer = Answer.parse(self.text(element_id))
                seen[answer.worker] = answer.seen
            if workers <= set(seen):
                break
        for worker, data in seen.items():
            assert data.endswith(expected), f"worker {worker} sees {data!r}, not {expected!r}"
        assert workers <= set(seen), f"only workers {sorted(seen)} of {sorted(workers)} answered"
        return seen


# ---------------------------------------------------------------- a run


@dataclass
class Run:
    """The times of one source's run: step -> answer -> [ms as the browser saw it]."""

    source: str
    times: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    reads: dict[str, list[float]] = field(default_factory=dict)
    checks: int = 0

    def add(self, step: str, timed: dict[str, tuple[float, Answer]]) -> None:
        for answer, (ms, parsed) in timed.items():
            self.times.setdefault(step, {}).setdefault(answer, []).append(ms)
            if answer in READERS:
                self.reads.setdefault(step, []).append(parsed.read_ms)


def drive(
    source: str,
    rows: int,
    repeats: int = 3,
    screenshot: Path | None = None,
    timeout: float = 300,
    preload: bool = False,
) -> Run:
    """Serves the app reading frames from `source` and clicks through it; checks every worker after each change.

    With `repeats=0`, only the first load and one switch of company, each checked.
    """
    work = Path(tempfile.mkdtemp(prefix=f"brain-dash-{source}-"))
    store = Path(tempfile.mkdtemp(dir="/dev/shm", prefix=f"brain-dash-{source}-"))
    env = {k: v for k, v in os.environ.items() if k not in ("BRAIN_URL", "BRAIN_PERSIST")}
    env.update(BRAIN_PATH=str(store), DASH_APP_ROWS=str(rows), DASH_APP_SOURCE=source,
               DASH_APP_PARQUET=str(work / "parquet"))
    run = Run(source)
    try:
        with gunicorn(env, preload=preload) as server, chromium() as driver:
            page = Page(driver, timeout)
            workers = server.workers()

            def check(expected_from: str) -> None:
                written = re.search(r"([\d,]+ rows, revenue [\d,.]+)", page.text(expected_from))
                assert written, page.text(expected_from)
                page.check_workers(written.group(1), workers)
                assert server.workers() == workers, "a worker was restarted"
                run.checks += 1

            everything = ("loaded-served", *READERS)
            driver.get(server.url)
            page.wait(lambda: bool(driver.execute_script("return !!document.getElementById('figure-served')")), "the page")
            page.wait(lambda: page._agree(everything) and all(page.text(a) for a in everything), "the first load")
            driver.execute_script(WATCH)
            check("loaded-served")
            run.add("Company B, first pick: generated and written once", page.act("#dataset input[value='company-b']", everything))
            check("loaded-served")
            for _ in range(repeats):
                for company in ("a", "b"):
                    timed = page.act(f"#dataset input[value='company-{company}']", everything)
                    run.add("switch company (already loaded): read by name", timed)
                    check("loaded-served")
            for region in ("south", "east", "north")[:repeats]:
                run.add("filter another region", page.act(f"#region input[value='{region}']", ("filtered-served",)))
            for _ in range(repeats):
                timed = page.act("#discount", ("discount-served", *READERS))
                run.add("10% off: read, change, write back; all re-read", timed)
                check("discount-served")
            if repeats:
                run.add("refresh from the warehouse: generated and written", page.act("#refresh", everything))
                check("loaded-served")
            if screenshot is not None:
                save_screenshot(driver, screenshot)
    finally:
        shutil.rmtree(store, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    return run


def save_screenshot(driver: Any, path: Path) -> None:
    """The page as a small PNG (a palette of 64 colours)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    with Image.open(path) as shot:
        small = shot.convert("RGB").quantize(colors=64)
    small.save(path, optimize=True)


# ---------------------------------------------------------------- the table


def table(runs: list[Run]) -> str:
    """Medians in milliseconds, as Markdown: each step and answer, brain against Parquet."""
    by = {run.source: run for run in runs}
    brain, parquet = by["brain"], by["parquet"]
    lines = [
        "| step | answer | brain | Parquet | Parquet / brain |",
        "|---|---|---:|---:|---:|",
    ]
    for step, answers in brain.times.items():
        for answer, times in answers.items():
            ours = statistics.median(times)
            theirs = statistics.median(parquet.times[step][answer])
            lines.append(f"| {step} | {LABELS[answer]} | {_ms(ours)} | {_ms(theirs)} | {theirs / ours:.1f}x |")
    lines.append("")
    lines.append("| the frame's read, in the callback (median) | brain | Parquet |")
    lines.append("|---|---:|---:|")
    for step in brain.reads:
        lines.append(f"| {step} | {_ms(statistics.median(brain.reads[step]))} | {_ms(statistics.median(parquet.reads[step]))} |")
    return "\n".join(lines)


def _ms(value: float) -> str:
    return f"{value:,.1f} ms" if value < 100 else f"{value:,.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3, help="times each timed step runs (medians are shown)")
    parser.add_argument("--screenshot", type=Path, help="save a PNG of the page (brain's run) here")
    args = parser.parse_args()
    if missing := missing_tools():
        raise SystemExit(f"missing: {', '.join(missing)} (make setup installs them)")
    runs = []
    for source in ("brain", "parquet"):
        started = time.monotonic()
        runs.append(drive(source, args.rows, args.repeats, args.screenshot if source == "brain" else None))
        print(f"{source}: {runs[-1].checks} checks of all {WORKERS} workers passed ({time.monotonic() - started:.0f} s)",
              file=sys.stderr)
    print(f"{args.rows:,} rows per frame, {WORKERS} gunicorn workers, median of {args.repeats} where repeated\n")
    print(table(runs))


if __name__ == "__main__":
    main()
