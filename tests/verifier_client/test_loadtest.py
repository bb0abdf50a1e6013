"""The load test: statistics on hand-made numbers, the loopback rule, the HTTP client against
canned answers, and a real run against a real local server (a tiny model with and without CSRP)."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from verifier_client.cli import main
from verifier_client.loadtest import (
    LoadSettings,
    LoadTestError,
    _arrivals,
    _Connection,
    _RequestError,
    _send,
    _Target,
    check_loopback,
    latency_summary,
    overhead,
    parse_metrics,
    percentile,
    stage_breakdown,
)
from verifier_client.local_server import LocalServer
from verifier_client.oip_client import InputPlan

# ---------------------------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------------------------


def test_percentile_is_nearest_rank() -> None:
    hundred = [float(v) for v in range(1, 101)]
    assert [percentile(hundred, q) for q in (1, 50, 90, 95, 99, 100)] == [1, 50, 90, 95, 99, 100]
    four = [10.0, 20.0, 30.0, 40.0]
    assert percentile(four, 25) == 10  # rank ceil(1.0) = 1
    assert percentile(four, 50) == 20  # rank ceil(2.0) = 2
    assert percentile(four, 51) == 30  # rank ceil(2.04) = 3
    assert percentile(four, 90) == 40  # rank ceil(3.6) = 4: an observed value, not 37
    assert percentile([7.0], 99) == 7
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError, match=r"q must be in \(0, 100\]"):
        percentile(four, 0)


def test_latency_summary_in_milliseconds() -> None:
    summary = latency_summary([0.004, 0.001, 0.003, 0.002])  # seconds, any order
    assert summary == {"p50": 2.0, "p90": 4.0, "p95": 4.0, "p99": 4.0, "max": 4.0, "mean": 2.5}
    ten = latency_summary([i / 1000 for i in range(1, 11)])
    assert (ten["p50"], ten["p90"], ten["p95"], ten["p99"]) == (5.0, 9.0, 10.0, 10.0)
    assert latency_summary([]) == dict.fromkeys(("p50", "p90", "p95", "p99", "max", "mean"))


def test_arrivals_constant_and_poisson() -> None:
    constant = _arrivals(10.0, 1.0, False, 1000, random.Random(0))
    assert constant == pytest.approx([i / 10 for i in range(10)])
    assert len(_arrivals(10.0, 1.0, False, 4, random.Random(0))) == 4  # --max-requests caps
    poisson = _arrivals(1000.0, 10.0, True, 100_000, random.Random(1))
    assert poisson == _arrivals(1000.0, 10.0, True, 100_000, random.Random(1))  # seeded
    assert abs(len(poisson) - 10_000) < 4 * math.sqrt(10_000)
    gaps = [b - a for a, b in itertools.pairwise(poisson)]
    assert min(gaps) >= 0 and 0.0009 < sum(gaps) / len(gaps) < 0.0011


def test_metrics_deltas_give_the_stage_breakdown() -> None:
    def text(requests: int, images: int, batches: int, queue: float, pre: float, infer: float,
             failures: int) -> str:
        lines = [
            "# TYPE inference_request_total counter",
            f'inference_request_total{{model="m"}} {requests}',
            f'inference_request_total{{model="other"}} {requests * 10}',
            "# TYPE inference_request_failure_total counter",
            f'inference_request_failure_total{{model="m",reason="overloaded"}} {failures}',
            "# TYPE inference_count_total counter",
            f'inference_count_total{{model="m"}} {images}',
            "# TYPE inference_batch_count_total counter",
            f'inference_batch_count_total{{model="m"}} {batches}',
        ]
        for stage, total, count in (("queue", queue, requests), ("preprocess", pre, batches),
                                    ("compute", infer, batches), ("request", queue, requests)):
            name = f"inference_{stage}_duration_seconds"
            lines += [f"# TYPE {name} histogram",
                      f'{name}_bucket{{le="+Inf",model="m"}} {count}',
                      f'{name}_count{{model="m"}} {count}', f'{name}_sum{{model="m"}} {total}']
        return "\n".join(lines) + "\n"

    before = parse_metrics(text(5, 10, 2, 0.010, 0.002, 0.004, 0))
    after = parse_metrics(text(105, 410, 12, 0.210, 0.022, 0.104, 3))
    stages = stage_breakdown(before, after, "m")
    assert stages["requests"] == 100 and stages["images"] == 400 and stages["batches"] == 10
    assert stages["mean_batch_size"] == 40.0
    assert stages["queue_ms_per_request"] == pytest.approx(2.0)  # 0.2 s / 100 requests
    assert stages["preprocess_ms_per_batch"] == pytest.approx(2.0)  # 0.02 s / 10 batches
    assert stages["preprocess_us_per_image"] == pytest.approx(50.0)  # 0.02 s / 400 images
    assert stages["infer_ms_per_batch"] == pytest.approx(10.0)
    assert stages["failures"] == {"overloaded": 3}
    idle = stage_breakdown(after, after, "m")
    assert idle["batches"] == 0 and idle["preprocess_ms_per_batch"] is None


def test_overhead_is_first_minus_second() -> None:
    def point(model: str, p50: float, rps: float, pre: float) -> dict:
        server = dict.fromkeys(("queue_ms_per_request", "preprocess_ms_per_batch",
                                "preprocess_us_per_image", "infer_ms_per_batch",
                                "infer_us_per_image", "request_ms"), 1.0)
        server["preprocess_ms_per_batch"] = pre
        return {"model": model, "mode": "closed", "concurrency": 8, "rate": None,
                "achieved_rps": rps,
                "latency_ms": {"p50": p50, "p99": p50 * 2, "mean": p50}, "server": server}

    rows = overhead([point("csrp", 5.0, 80.0, 0.5), point("copy", 4.0, 100.0, 0.1)],
                    ["csrp", "copy"])
    assert len(rows) == 1
    row = rows[0]
    assert row["minus"] == "csrp - copy" and row["concurrency"] == 8
    assert row["p50_ms"] == 1.0 and row["p99_ms"] == 2.0
    assert row["throughput_ratio"] == 0.8
    assert row["preprocess_ms_per_batch"] == pytest.approx(0.4)
    assert row["infer_ms_per_batch"] == 0.0


# ---------------------------------------------------------------------------------------------
# bounds and the loopback rule
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:8000",
                                 "http://[::1]:8000", "http://127.10.0.3", "http://LOCALHOST"])
def test_loopback_urls_are_accepted(url: str) -> None:
    host, port = check_loopback(url)
    assert host and port in (80, 8000)


@pytest.mark.parametrize("url", ["http://10.0.0.5:8000", "http://server:8000",
                                 "http://0.0.0.0:8000", "http://example.com",
                                 "http://[2001:db8::1]:8000"])
def test_non_loopback_urls_are_refused(url: str) -> None:
    with pytest.raises(LoadTestError, match=r"not a loopback address.*--allow-remote"):
        check_loopback(url)
    assert check_loopback(url, allow_remote=True)[0]


def test_only_plain_http() -> None:
    with pytest.raises(LoadTestError, match="plain http:// only"):
        check_loopback("https://127.0.0.1:8443")


def test_cli_refuses_a_remote_server(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["loadtest", "--url", "http://192.0.2.7:8000", "--model", "m",
                 "--duration", "1", "--quiet"])
    assert code == 2
    assert "192.0.2.7 is not a loopback address" in capsys.readouterr().err


def test_settings_are_bounded() -> None:
    base = {"url": "http://127.0.0.1:1", "models": ("a",)}
    with pytest.raises(LoadTestError, match="limit is 3600 s"):
        LoadSettings(url=base["url"], models=("a", "b"), concurrency=(1, 2, 4, 8),
                     duration_s=600)  # 4 points x 2 models x 600 s
    with pytest.raises(LoadTestError, match="--poisson needs --rate"):
        LoadSettings(**base, concurrency=(1,), poisson=True)
    with pytest.raises(LoadTestError, match="one or two models"):
        LoadSettings(url=base["url"], models=("a", "b", "c"), concurrency=(1,))
    with pytest.raises(LoadTestError, match="concurrency must be in"):
        LoadSettings(**base, concurrency=(0,))
    with pytest.raises(LoadTestError, match="duration must be in"):
        LoadSettings(**base, concurrency=(1,), duration_s=601)


# ---------------------------------------------------------------------------------------------
# the HTTP client against canned answers
# ---------------------------------------------------------------------------------------------


def _answer(status: int, labels: list[int], chunked: bool = False) -> bytes:
    body = json.dumps({"model_name": "m", "outputs": [
        {"name": "label", "datatype": "INT64", "shape": [len(labels)], "data": labels}]}).encode()
    if status != 200:
        body = b'{"error": "overloaded"}'
    head = f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
    if chunked:
        half = len(body) // 2
        payload = b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n"
                           for part in (body[:half], body[half:])) + b"0\r\n\r\n"
        return (head + "transfer-encoding: chunked\r\n\r\n").encode() + payload
    return (head + f"content-length: {len(body)}\r\n\r\n").encode() + body


async def _exchange_with(answer: bytes, n: int) -> str:
    """Send one request to a server that always answers ``answer``; the failure kind or 'ok'."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        await reader.readexactly(length)
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    plan = InputPlan("m", "images", "UINT8", "NHWC", (1, 2, 2))
    target = _Target("m", plan, [], n, {})
    request = (b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n"
               ) + b"{}"
    connection = await _Connection.open("127.0.0.1", port, 5.0)
    try:
        await _send(connection, target, request, 5.0)
        return "ok"
    except _RequestError as error:
        return error.kind
    finally:
        connection.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(("answer", "n", "kind"), [
    (_answer(200, [3]), 1, "ok"),
    (_answer(200, [3, 1], chunked=True), 2, "ok"),
    (_answer(200, [3, 1]), 1, "bad_response"),  # two labels for one image
    (_answer(200, []), 1, "bad_response"),
    (_answer(503, []), 1, "http_503"),
    (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", 1, "connection"),
], ids=["one-label", "chunked", "label-count", "no-labels", "503", "truncated"])
def test_client_checks_every_answer(answer: bytes, n: int, kind: str) -> None:
    assert asyncio.run(_exchange_with(answer, n)) == kind


# ---------------------------------------------------------------------------------------------
# a real server: tiny target with and without CSRP
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def csrp_server(tiny_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    repo = tmp_path_factory.mktemp("loadtest-repo")
    shutil.copytree(tiny_repo / "target", repo / "target")
    shutil.copytree(tiny_repo / "target", repo / "target-csrp")
    config_path = repo / "target-csrp" / "config.json"
    config = json.loads(config_path.read_text())
    config.update(name="target-csrp", preprocessing={"name": "csrp", "sigma": 1.16, "p": 3})
    config_path.write_text(json.dumps(config))
    with LocalServer(repo, "--models", "target,target-csrp", "--backend", "onnx") as server:
        yield server.url


def test_closed_loop_report_with_csrp_overhead(csrp_server: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    code = main(["loadtest", "--url", csrp_server, "--model", "target-csrp", "--model", "target",
                 "--concurrency", "1,4", "--duration", "1", "--images-per-request", "2",
                 "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "loadtest.json").read_text())
    assert report["models"] == ["target-csrp", "target"]
    assert report["server_models"]["target-csrp"]["preprocessing"] == {
        "name": "csrp", "sigma": 1.16, "p": 3}
    assert report["server_models"]["target"]["preprocessing"] is None
    assert report["server_models"]["target"]["backend"] == "onnx"
    points = report["points"]
    assert sorted((p["model"], p["concurrency"]) for p in points) == [
        ("target", 1), ("target", 4), ("target-csrp", 1), ("target-csrp", 4)]
    for p in points:
        assert p["mode"] == "closed" and p["failed"] == 0 and p["errors"] == {}
        assert p["completed"] > 0 and p["completed"] == p["issued"]
        assert 0.9 <= p["elapsed_s"] < 30
        assert p["achieved_rps"] > 0 and p["achieved_ips"] == pytest.approx(
            2 * p["achieved_rps"], rel=0.01)
        lat = p["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"]
        server = p["server"]
        assert server["requests"] == p["completed"]  # the /metrics delta saw exactly our load
        assert server["images"] == 2 * p["completed"]
        assert server["batches"] >= 1 and server["preprocess_ms_per_batch"] is not None
        assert server["infer_ms_per_batch"] > 0 and server["queue_ms_per_request"] >= 0
    rows = report["overhead"]
    assert [(r["minus"], r["concurrency"]) for r in rows] == [
        ("target-csrp - target", 1), ("target-csrp - target", 4)]
    assert all(r["throughput_ratio"] > 0 and r["preprocess_ms_per_batch"] is not None
               for r in rows)
    markdown = (out / "loadtest.md").read_text()
    assert "| model | load | offered req/s |" in markdown
    assert "## Preprocessing overhead (target-csrp - target" in markdown
    assert markdown.count("| target-csrp | c=") == 2
    assert (out / "loadtest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_open_loop_poisson(csrp_server: str, tmp_path: Path) -> None:
    code = main(["loadtest", "--url", csrp_server, "--model", "target", "--rate", "40",
                 "--poisson", "--duration", "0.5", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    report = json.loads((tmp_path / "loadtest.json").read_text())
    [point] = report["points"]
    assert point["mode"] == "open" and point["arrivals"] == "poisson" and point["rate"] == 40
    assert point["concurrency"] is None and report["overhead"] == []
    assert point["failed"] == 0 and point["completed"] == point["issued"] > 0
    assert point["offered_rps"] == pytest.approx(point["issued"] / 0.5)
    assert point["server"]["requests"] == point["completed"]


def test_unknown_model_is_one_line(csrp_server: str, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["loadtest", "--url", csrp_server, "--model", "nope", "--concurrency", "1",
                 "--duration", "0.2", "--out", str(tmp_path), "--quiet"])
    assert code == 2
    assert "model 'nope' not found" in capsys.readouterr().err
    assert not (tmp_path / "loadtest.json").exists()
