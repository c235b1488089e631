"""A sales explorer served by several gunicorn workers that share one DataFrame through brain.

Pick a company: its sales (10 million rows by default) are loaded once, by
whichever worker answers, into brain. Every callback (the monthly figure,
the summary table, the filter) reads the frame by name in whichever worker
serves it, from shared memory: its numbers and dates are not copied. The
discount callback changes part of the data and writes the frame back for
every worker.

    gunicorn --workers 4 --bind 127.0.0.1:8050 app:server

Environment:
    DASH_APP_ROWS      rows per dataset (default 10,000,000)
    DASH_APP_SOURCE    "brain" (default), or "parquet": every callback reads
                       a Parquet file instead, as such apps did before brain
    DASH_APP_PARQUET   the Parquet files' directory (default: $TMPDIR/brain-dash-app)
    BRAIN_URL, BRAIN_PATH  the store (default /dev/shm/brain-<uid>/default)

Each answer names the worker process that computed it, so a page shows
whether every worker sees the same data.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import MATCH, Dash, Input, Output, State, ctx, dcc, html

from brain import Brain

ROWS = int(os.environ.get("DASH_APP_ROWS", "10000000"))
SOURCE = os.environ.get("DASH_APP_SOURCE", "brain")
PARQUET_DIR = Path(os.environ.get("DASH_APP_PARQUET", Path(tempfile.gettempdir()) / "brain-dash-app"))
if SOURCE not in ("brain", "parquet"):
    raise SystemExit(f"DASH_APP_SOURCE must be brain or parquet, not {SOURCE!r}")

DATASETS = {"company-a": "Company A", "company-b": "Company B"}
REGIONS = ["north", "south", "east", "west", "centre", "coast", "hills", "islands"]
MONTH_STARTS = np.cumsum([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30])  # day of the year each month starts
PROBES = 8  # answers asked for at once by "Which workers?": enough to reach every worker

# Opened in every worker (gunicorn imports the app in each one); a Brain
# opened before a fork (--preload) works in the children too.
brain = Brain(namespace="dash-sales")


# ---------------------------------------------------------------- data


def generate(dataset: str, version: int) -> pd.DataFrame:
    """A year of a company's sales: the stand-in for a query to the warehouse."""
    rng = np.random.default_rng([list(DATASETS).index(dataset), version])
    day = rng.integers(0, 365, ROWS, dtype=np.int16)
    units = rng.integers(1, 20, ROWS, dtype=np.int32)
    price = rng.gamma(2.0, 20.0 + 10 * list(DATASETS).index(dataset), ROWS)
    return pd.DataFrame(
        {
            "day": pd.Timestamp("2026-01-01") + pd.to_timedelta(day, unit="D"),
            "month": np.searchsorted(MONTH_STARTS, day, side="right").astype(np.int8),
            "region": pd.Categorical.from_codes(rng.integers(0, len(REGIONS), ROWS), REGIONS),
            "units": units,
            "price": price,
            "revenue": units * price,
        }
    )


def fingerprint(frame: pd.DataFrame) -> str:
    """What a worker saw, in a line two workers can compare."""
    return f"{len(frame):,} rows, revenue {frame['revenue'].sum():,.2f}"


class BrainSource:
    """Frames in brain: loaded once, read by name in every worker, zero-copy."""

    name = "brain"

    def version(self, dataset: str) -> int | None:
        meta = brain.get(f"{dataset}/meta")
        return None if meta is None else int(meta["version"])

    def write(self, dataset: str, frame: pd.DataFrame, version: int) -> None:
        brain.learn(dataset, frame, description=f"{DATASETS[dataset]} sales, version {version}")
        brain[f"{dataset}/meta"] = {"version": version}

    def read(self, dataset: str) -> pd.DataFrame:
        frame: pd.DataFrame = brain[dataset]
        return frame

    def lock(self, dataset: str) -> Any:
        return brain.lock(dataset, timeout=300)


class ParquetSource:
    """Frames in Parquet files: every callback reads the whole file again."""

    name = "parquet"

    def __init__(self) -> None:
        PARQUET_DIR.mkdir(parents=True, exist_ok=True)

    def version(self, dataset: str) -> int | None:
        try:
            return int(json.loads((PARQUET_DIR / f"{dataset}.json").read_text())["version"])
        except FileNotFoundError:
            return None

    def write(self, dataset: str, frame: pd.DataFrame, version: int) -> None:
        # Written aside and renamed, so a reader never opens half a file.
        partial = PARQUET_DIR / f".{dataset}.{os.getpid()}.parquet"
        frame.to_parquet(partial)
        os.replace(partial, PARQUET_DIR / f"{dataset}.parquet")
        (PARQUET_DIR / f"{dataset}.json").write_text(json.dumps({"version": version}))

    def read(self, dataset: str) -> pd.DataFrame:
        return pd.read_parquet(PARQUET_DIR / f"{dataset}.parquet")

    def lock(self, dataset: str) -> Any:
        return brain.lock(dataset, timeout=300)  # brain's cross-process lock serves here too


source: BrainSource | ParquetSource = BrainSource() if SOURCE == "brain" else ParquetSource()


def served(started: float, read_ms: float, seen: str) -> str:
    """The line under each answer: who answered, what it saw, what it cost, when."""
    total_ms = (time.perf_counter() - started) * 1000
    at = time.strftime("%H:%M:%S") + f".{int(time.time() * 1000) % 1000:03}"
    return f"worker {os.getpid()} · {seen} · read {read_ms:,.1f} ms · callback {total_ms:,.0f} ms · at {at}"


def read(dataset: str) -> tuple[pd.DataFrame, float]:
    started = time.perf_counter()
    frame = source.read(dataset)
    return frame, (time.perf_counter() - started) * 1000


# ---------------------------------------------------------------- page

app = Dash(__name__, title="Sales explorer")
server = app.server

app.layout = html.Div(
    style={"fontFamily": "sans-serif", "maxWidth": "1100px", "margin": "0 auto"},
    children=[
        html.H2(f"Sales explorer · frames read from {source.name}"),
        html.Div(
            style={"display": "flex", "gap": "2em", "alignItems": "center"},
            children=[
                dcc.RadioItems(id="dataset", options=DATASETS, value="company-a", inline=True),
                html.Button("Refresh from the warehouse", id="refresh"),
                html.Button("Which workers?", id="check"),
            ],
        ),
        dcc.Store(id="loaded"),
        html.Div(id="loaded-served", className="served"),
        dcc.Graph(id="figure", style={"height": "330px"}),
        html.Div(id="figure-served", className="served"),
        html.Div(
            style={"display": "flex", "gap": "3em"},
            children=[
                html.Div([html.H4("By region"), html.Div(id="summary"), html.Div(id="summary-served", className="served")]),
                html.Div(
                    [
                        html.H4("Filter"),
                        dcc.RadioItems(id="region", options=REGIONS, value="north", inline=True),
                        html.Div(id="filtered"),
                        html.Div(id="filtered-served", className="served"),
                        html.H4("Change the data"),
                        html.Button("10% off in this region", id="discount"),
                        html.Div(id="discount-served", className="served"),
                    ]
                ),
            ],
        ),
        html.H4("Workers"),
        html.Div("“Which workers?” asks several at once; each answer says which worker gave it and what it saw."),
        # No bullets: the items are empty until the first check.
        html.Ul(
            [html.Li(id={"type": "probe", "index": i}, className="probe") for i in range(PROBES)],
            style={"listStyleType": "none", "paddingLeft": 0},
        ),
    ],
)


# ---------------------------------------------------------------- callbacks


@app.callback(
    Output("loaded", "data"),
    Output("loaded-served", "children"),
    Input("dataset", "value"),
    Input("refresh", "n_clicks"),
)
def load(dataset: str, _clicks: int | None) -> tuple[dict[str, Any], str]:
    """Loads the dataset the first time it is picked, or when asked to refresh: once, for every worker."""
    started = time.perf_counter()
    with source.lock(dataset):
        version = source.version(dataset)
        if version is None or ctx.triggered_id == "refresh":
            version = (version or 0) + 1
            source.write(dataset, generate(dataset, version), version)
            what = "loaded"
        else:
            what = "already loaded"
    frame, read_ms = read(dataset)
    seen = f"{DATASETS[dataset]} v{version}: {fingerprint(frame)}"
    return {"dataset": dataset, "version": version}, f"{what} · " + served(started, read_ms, seen)


@app.callback(Output("figure", "figure"), Output("figure-served", "children"), Input("loaded", "data"))
def figure(loaded: dict[str, Any]) -> tuple[go.Figure, str]:
    started = time.perf_counter()
    frame, read_ms = read(loaded["dataset"])
    monthly = frame.groupby(["month", "region"], observed=True)["revenue"].sum().unstack("region")
    chart = go.Figure([go.Scatter(x=monthly.index, y=monthly[r], name=r, mode="lines") for r in monthly.columns])
    chart.update_layout(
        title=f"{DATASETS[loaded['dataset']]}: revenue by month",
        margin={"t": 40, "b": 30, "l": 60, "r": 10},
        xaxis_title="month",
    )
    return chart, served(started, read_ms, f"v{loaded['version']}: {fingerprint(frame)}")


@app.callback(Output("summary", "children"), Output("summary-served", "children"), Input("loaded", "data"))
def summary(loaded: dict[str, Any]) -> tuple[html.Table, str]:
    started = time.perf_counter()
    frame, read_ms = read(loaded["dataset"])
    table = frame.groupby("region", observed=True).agg(
        rows=("units", "size"), units=("units", "sum"), revenue=("revenue", "sum"), price=("price", "mean")
    )
    header = html.Tr([html.Th(c) for c in ["region", "rows", "units", "revenue", "mean price"]])
    body = [
        html.Tr([html.Td(r.Index), html.Td(f"{r.rows:,}"), html.Td(f"{r.units:,}"), html.Td(f"{r.revenue:,.0f}"), html.Td(f"{r.price:,.2f}")])
        for r in table.itertuples()
    ]
    return html.Table([header, *body]), served(started, read_ms, f"v{loaded['version']}: {fingerprint(frame)}")


@app.callback(
    Output("filtered", "children"),
    Output("filtered-served", "children"),
    Input("loaded", "data"),
    Input("region", "value"),
)
def filtered(loaded: dict[str, Any], region: str) -> tuple[str, str]:
    started = time.perf_counter()
    frame, read_ms = read(loaded["dataset"])
    rows = frame[(frame["region"] == region) & (frame["revenue"] > 500)]
    text = f"{len(rows):,} sales over 500 in {region}, {rows['revenue'].sum():,.0f} in all"
    return text, served(started, read_ms, f"v{loaded['version']}: {fingerprint(frame)}")


@app.callback(
    Output("loaded", "data", allow_duplicate=True),
    Output("discount-served", "children"),
    Input("discount", "n_clicks"),
    State("loaded", "data"),
    State("region", "value"),
    prevent_initial_call=True,
)
def discount(_clicks: int, loaded: dict[str, Any], region: str) -> tuple[dict[str, Any], str]:
    """Changes part of the data and writes the frame back: every worker reads the new one."""
    started = time.perf_counter()
    dataset = loaded["dataset"]
    with source.lock(dataset):
        frame, read_ms = read(dataset)
        changed = frame.copy()  # frames read from brain are read-only views of shared memory
        rows = (changed["region"] == region).to_numpy()
        changed.loc[rows, "price"] *= 0.9
        changed.loc[rows, "revenue"] = changed.loc[rows, "units"] * changed.loc[rows, "price"]
        version = (source.version(dataset) or 0) + 1
        source.write(dataset, changed, version)
    seen = f"{DATASETS[dataset]} v{version}: {fingerprint(changed)}"
    return {"dataset": dataset, "version": version}, f"10% off in {region} · " + served(started, read_ms, seen)


@app.callback(
    Output({"type": "probe", "index": MATCH}, "children"),
    Input("check", "n_clicks"),
    State("loaded", "data"),
    prevent_initial_call=True,
)
def probe(clicks: int, loaded: dict[str, Any]) -> str:
    """One of several answers asked for at once: they land on different workers."""
    started = time.perf_counter()
    frame, read_ms = read(loaded["dataset"])
    seen = f"{DATASETS[loaded['dataset']]}: {fingerprint(frame)}"
    time.sleep(0.05)  # hold this worker a moment, so the other answers go to the others
    return f"check {clicks} · " + served(started, read_ms, seen)
