"""Load-test outputs: the preprocessing overhead of one model over another, Markdown, a plot,
and the three files, each written atomically (``models.atomic``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.atomic import write_bytes, write_json, write_text
from verifier_client.studies.report_files import plain_log_ticks, png_bytes


def level_label(point: dict[str, Any]) -> str:
    return (f"c={point['concurrency']}" if point["mode"] == "closed"
            else f"r={point['rate']:g}/s")


def _difference(a: float | None, b: float | None, digits: int = 3) -> float | None:
    return None if a is None or b is None else round(a - b, digits)


def overhead(points: list[dict[str, Any]], models: Sequence[str]) -> list[dict[str, Any]]:
    """Per point: ``models[0]`` minus ``models[1]`` (latency, server stages) and the ratio of
    their achieved throughputs."""
    first, second = models
    keyed = {(p["model"], p["mode"], p["concurrency"], p["rate"]): p for p in points}
    rows = []
    for point in points:
        if point["model"] != first:
            continue
        other = keyed.get((second, point["mode"], point["concurrency"], point["rate"]))
        if other is None:
            continue
        a, b = point, other
        rows.append({
            "mode": a["mode"], "concurrency": a["concurrency"], "rate": a["rate"],
            "minus": f"{first} - {second}",
            "p50_ms": _difference(a["latency_ms"]["p50"], b["latency_ms"]["p50"]),
            "p99_ms": _difference(a["latency_ms"]["p99"], b["latency_ms"]["p99"]),
            "mean_ms": _difference(a["latency_ms"]["mean"], b["latency_ms"]["mean"]),
            "throughput_ratio": (round(a["achieved_rps"] / b["achieved_rps"], 4)
                                 if a["achieved_rps"] and b["achieved_rps"] else None),
            **{key: _difference(a["server"][key], b["server"][key], 4) for key in (
                "queue_ms_per_request", "preprocess_ms_per_batch", "preprocess_us_per_image",
                "infer_ms_per_batch", "infer_us_per_image", "request_ms")},
        })
    return rows


# --------------------------------------------------------------------------------------------
# outputs
# --------------------------------------------------------------------------------------------


def spec_text(spec: dict[str, Any] | None) -> str:
    """A preprocessing spec as it is written on the command line: ``csrp(sigma=1.23, p=6)``."""
    if not spec:
        return "none"
    options = ", ".join(f"{k}={v}" for k, v in spec.items() if k != "name")
    return f"{spec.get('name')}({options})"


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_report(report: dict[str, Any], command: str | None = None) -> str:
    """The report as Markdown: settings, one row per point, and the overhead table."""
    s = report["settings"]
    lines: list[str] = []  # no title: the file is read under the report's own section heading
    if command:
        lines += ["```", command, "```", ""]
    lines += [f"Server {report['url']}; {s['images_per_request']} image(s) per request, "
              f"{s['duration_s']:g} s per point, at most {s['max_requests']} requests per point; "
              f"run {report['created']}, {report.get('wall_s', '-')} s in all.", ""]
    for model, parameters in report["server_models"].items():
        lines.append(f"- `{model}`: preprocessing {spec_text(parameters.get('preprocessing'))}, "
                     f"backend "
                     f"{parameters.get('backend')} on {parameters.get('device')} "
                     f"({', '.join(parameters.get('providers') or []) or '-'}), max batch "
                     f"{parameters.get('max_batch_size')}")
    lines += ["", "Latency in ms (client side, nearest-rank percentiles); server stages from "
              "`/metrics` deltas: queue per request, preprocess and infer per executed batch.", "",
              "| model | load | offered req/s | achieved req/s | img/s | p50 | p90 | p95 | p99 | "
              "max | errors | queue ms | preprocess ms/batch | infer ms/batch | batch |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    models = report["models"]
    rows = sorted(report["points"], key=lambda p: (p["mode"], p["concurrency"] or 0,
                                                   p["rate"] or 0.0, models.index(p["model"])))
    for p in rows:
        lat, srv = p["latency_ms"], p["server"]
        errors = ", ".join(f"{k} {v}" for k, v in p["errors"].items()) or "0"
        lines.append(
            f"| {p['model']} | {level_label(p)} | {_fmt(p['offered_rps'], 1)} | "
            f"{_fmt(p['achieved_rps'], 1)} | {_fmt(p['achieved_ips'], 1)} | {_fmt(lat['p50'])} | "
            f"{_fmt(lat['p90'])} | {_fmt(lat['p95'])} | {_fmt(lat['p99'])} | {_fmt(lat['max'])} | "
            f"{errors} | {_fmt(srv['queue_ms_per_request'], 3)} | "
            f"{_fmt(srv['preprocess_ms_per_batch'], 3)} | {_fmt(srv['infer_ms_per_batch'], 3)} | "
            f"{_fmt(srv['mean_batch_size'], 1)} |")
    if report["overhead"]:
        first, second = report["models"]
        keyed = {(p["model"], p["mode"], p["concurrency"], p["rate"]): p
                 for p in report["points"]}
        lines += ["", f"### Preprocessing overhead ({first} against {second}, same server, same "
                  "run)", "", f"Latency percentiles of both ({first} / {second}): a percentile "
                  "of a few hundred requests moves by a few ms between runs, so a small "
                  "difference either way is noise. Server stage times: "
                  f"{first} minus {second}.", "",
                  "| load | p50 ms | p99 ms | throughput ratio | preprocess ms/batch | "
                  "preprocess us/image | infer ms/batch | queue ms | server request ms |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in report["overhead"]:
            a = keyed[(first, row["mode"], row["concurrency"], row["rate"])]["latency_ms"]
            b = keyed[(second, row["mode"], row["concurrency"], row["rate"])]["latency_ms"]
            cells = [f"{_fmt(a['p50'])} / {_fmt(b['p50'])}", f"{_fmt(a['p99'])} / {_fmt(b['p99'])}"]
            cells += [_fmt(row[key], digits) for key, digits in (
                ("throughput_ratio", 3), ("preprocess_ms_per_batch", 3),
                ("preprocess_us_per_image", 1), ("infer_ms_per_batch", 3),
                ("queue_ms_per_request", 3), ("request_ms", 3))]
            lines.append(f"| {level_label(row)} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def plot_report(report: dict[str, Any], path: Path) -> None:
    """Latency (p50 solid, p99 dashed) against achieved images/s, one colour per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 4.8))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    series = sorted({(p["model"], p["mode"]) for p in report["points"]},
                    key=lambda pair: (report["models"].index(pair[0]), pair[1]))
    for index, (model, mode) in enumerate(series):
        chosen = [p for p in report["points"] if p["model"] == model and p["mode"] == mode
                  and p["latency_ms"]["p50"] is not None]
        chosen.sort(key=lambda p: p["concurrency"] or p["rate"] or 0)
        if not chosen:
            continue
        x = [p["achieved_ips"] for p in chosen]
        colour = colours[index % len(colours)]
        name = model if len({m for m, _ in series}) == len(series) else f"{model} ({mode})"
        axes.plot(x, [p["latency_ms"]["p50"] for p in chosen], "o-", color=colour,
                  label=f"{name} p50")
        axes.plot(x, [p["latency_ms"]["p99"] for p in chosen], "s--", color=colour,
                  label=f"{name} p99", alpha=0.7)
        if index == 0:  # the levels once, under the first series: the others sit beside it
            for p, xi in zip(chosen, x, strict=True):
                axes.annotate(level_label(p), (xi, p["latency_ms"]["p50"]), fontsize=7,
                              color="0.25", textcoords="offset points", xytext=(6, -13))
    axes.set_xlabel("achieved throughput (images/s); c = concurrent clients")
    axes.set_ylabel("latency (ms)")
    axes.set_yscale("log")
    values = [v for p in report["points"] for v in (p["latency_ms"]["p50"], p["latency_ms"]["p99"])
              if v is not None]
    if values:  # plain-number ticks (2, 5, 10, 20 ms), not 2x10^0
        ticks = [t * 10.0 ** e for e in range(-2, 6) for t in (1, 2, 5)
                 if min(values) / 1.5 <= t * 10.0 ** e <= max(values) * 1.5]
        plain_log_ticks(axes, "y", ticks)
        axes.set_ylim(min(values) / 1.35, max(values) * 1.3)  # room for the level labels
    axes.grid(True, which="both", alpha=0.3)
    modes = sorted({m for _, m in series})
    axes.set_title(f"Latency vs throughput of {' and '.join(report['models'])}: "
                   f"{'/'.join(modes)} loop, {report['settings']['images_per_request']} "
                   f"image(s) per request, {report['settings']['duration_s']:g} s per point",
                   fontsize=9)
    axes.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    write_bytes(path, png_bytes(figure))


def write_outputs(report: dict[str, Any], out: str | Path,
                  command: str | None = None) -> dict[str, Path]:
    """``loadtest.json``, ``loadtest.md`` and ``loadtest.png`` under ``out`` (atomic writes)."""
    out = Path(out)
    paths = {"json": out / "loadtest.json", "markdown": out / "loadtest.md",
             "plot": out / "loadtest.png"}
    write_json(paths["json"], {**report, "command": command} if command else report)
    write_text(paths["markdown"], markdown_report(report, command))
    plot_report(report, paths["plot"])
    return paths
