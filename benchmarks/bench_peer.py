"""Peer benchmark: this server against Triton, MLServer and TorchServe on the same model and the
same requests.

    python benchmarks/bench_peer.py [--repository zoo] [--duration 10] [--rounds 2]
                                    [--concurrency 1,8,32] [--out results/peer]

The load generator is ``wrk`` (C, one thread, Debian's ``wrk``), so the client is not the
bottleneck. Targets, all single-image requests of one Fashion-MNIST test image, on the zoo's
``copy`` (the target's weights, no preprocessing) unless named otherwise:

* ``triton oip-binary``: Triton's own HTTP front end and dynamic batcher (``nvidia-pytriton``,
  ``benchmarks/peers/triton_copy.py``; max batch 64, 2 ms delay, as our defaults) running the
  same ONNX graph with ONNX Runtime, on the same OIP binary-tensor body as ``oip copy``;
* ``mlserver oip-json``: MLServer 1.7 with a custom runtime on the same graph
  (``benchmarks/peers/mlserver_runtime.py``; adaptive batching 64 / 2 ms), on the OIP JSON body
  (its REST front end takes no binary tensors), against ``oip-json copy``;
* ``torchserve-png``: TorchServe (``torchserve`` and ``torch-model-archiver`` from PyPI, a JRE
  from Debian) serving the target as TorchScript with a small image handler, batch 16, 5 ms
  delay, one worker: a raw ``image/png`` body to ``/predictions/target``;
* ``png-raw copy`` / ``png-form copy``: this server's upload route, raw ``image/png`` body and
  multipart form;
* ``oip copy`` / ``oip-json copy`` / ``oip csrp``: the OIP route with binary tensors (UINT8
  [1, 28, 28, 1]), with JSON, and binary with CSRP inside the ONNX serving graph;
* ``oip csrp torch``: the same with ``--preprocess-in torch`` (CSRP as a torch transform before
  ONNX Runtime): the naive way, in the same run.

Peers run from their own virtual environments under ``build/peers/`` (``triton``: made from
Debian's ``/usr/bin/python3.11`` with ``nvidia-pytriton onnxruntime numpy``; ``mlserver``:
``mlserver==1.7.1 "uvloop<0.22" onnxruntime numpy``); a peer that is not installed is skipped
with one line. Every point runs ``--duration`` seconds and the rounds interleave (round 1: every
target at every concurrency, then round 2 ...), so drift hits all targets alike. Printed:
requests/s and p99 per point (range over rounds), the ratios, and the model-alone ceiling
(ONNX Runtime on the graph, batch 32, both cores) with each server's share of it at the
highest concurrency. Everything shares this machine's cores: compare numbers within one run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.atomic import write_json, write_text  # noqa: E402
from models.local_server import LocalServer, free_port  # noqa: E402
from models.provenance import code_version  # noqa: E402

HANDLER = '''
import io

import numpy as np
import torch
from PIL import Image
from ts.torch_handler.base_handler import BaseHandler


class Handler(BaseHandler):
    """PNG body -> float [1, 28, 28] in [0, 1] -> TorchScript classifier -> label."""

    def preprocess(self, data):
        images = []
        for row in data:
            body = row.get("data") or row.get("body")
            image = Image.open(io.BytesIO(body)).convert("L")
            images.append(torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)[None])
        return torch.stack(images)

    def postprocess(self, output):
        return output.argmax(1).tolist()
'''

LUA = '''
local f = io.open("{body}", "rb")
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
{headers}
'''


def find_tool(name: str) -> str | None:
    """``name`` on PATH or beside this interpreter (a virtual environment's bin)."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def sample_png() -> tuple[bytes, np.ndarray]:
    from PIL import Image

    from models.datasets import load_dataset

    image = load_dataset("fashion-mnist", "test").images[0]  # uint8 [1, 28, 28]
    array = np.ascontiguousarray(image.numpy()[0])  # uint8 [28, 28]
    buffer = io.BytesIO()
    Image.fromarray(array, "L").save(buffer, "PNG")
    return buffer.getvalue(), array


def oip_body(array: np.ndarray) -> tuple[bytes, dict[str, str]]:
    raw = np.ascontiguousarray(array[None, :, :, None]).tobytes()
    head = json.dumps({"inputs": [{"name": "images", "shape": [1, 28, 28, 1],
                                   "datatype": "UINT8",
                                   "parameters": {"binary_data_size": len(raw)}}]}).encode()
    return head + raw, {"Content-Type": "application/octet-stream",
                        "Inference-Header-Content-Length": str(len(head))}


def form_body(png: bytes) -> tuple[bytes, dict[str, str]]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; "
            f"filename=\"x.png\"\r\nContent-Type: image/png\r\n\r\n").encode() + png + \
        f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


# ---- TorchServe -------------------------------------------------------------------------------


class TorchServe:
    """TorchServe in its own folder: TorchScript of the target, one handler, one worker."""

    def __init__(self, target: Path, work: Path) -> None:
        self.target, self.work = target, work
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180.0) -> TorchServe:
        import torch

        from models.repository import load_model

        model, _ = load_model(self.target)
        scripted = torch.jit.trace(model.eval(), torch.rand(1, 1, 28, 28))
        store = self.work / "store"
        store.mkdir(parents=True)
        scripted.save(str(self.work / "target.pt"))
        (self.work / "handler.py").write_text(HANDLER)
        subprocess.run([find_tool("torch-model-archiver"), "--model-name", "target",
                        "--version", "1.0", "--serialized-file", str(self.work / "target.pt"),
                        "--handler", str(self.work / "handler.py"), "--export-path", str(store)],
                       check=True)
        management, metrics = free_port(), free_port()
        (self.work / "config.properties").write_text("\n".join([
            f"inference_address=http://127.0.0.1:{self.port}",
            f"management_address=http://127.0.0.1:{management}",
            f"metrics_address=http://127.0.0.1:{metrics}",
            "default_workers_per_model=1", "disable_token_authorization=true",
            "install_py_dep_per_model=false", "load_models=target.mar",
            'models={"target": {"1.0": {"marName": "target.mar", "minWorkers": 1, '
            '"maxWorkers": 1, "batchSize": 16, "maxBatchDelay": 5}}}', ""]))
        self.process = subprocess.Popen(
            [find_tool("torchserve"), "--start", "--foreground", "--ncs", "--model-store",
             str(store), "--ts-config", str(self.work / "config.properties"),
             "--disable-token-auth"],
            cwd=self.work, stdout=(self.work / "torchserve.log").open("wb"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "LOG_LOCATION": str(self.work / "logs"),
                 "METRICS_LOCATION": str(self.work / "logs")})
        deadline = time.monotonic() + timeout
        png, _ = sample_png()
        while time.monotonic() < deadline:
            try:
                reply = httpx.post(f"{self.url}/predictions/target", content=png,
                                   headers={"Content-Type": "image/png"}, timeout=5)
                if reply.status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        self.stop()
        log = (self.work / "torchserve.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"TorchServe did not answer within the timeout; its log ends:\n{log}")

    def stop(self) -> None:
        subprocess.run([find_tool("torchserve"), "--stop"], cwd=self.work,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        if self.process is not None:
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


# ---- Triton and MLServer ---------------------------------------------------------------------

PEERS = ROOT / "build" / "peers"


class PeerProcess:
    """A peer server run by its own virtual environment's python; ready when ``probe`` answers
    200."""

    def __init__(self, command: list[str], probe: str, work: Path, env: dict | None = None,
                 cwd: Path | None = None) -> None:
        self.command, self.probe, self.work = command, probe, work
        self.env, self.cwd = env, cwd
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 240.0) -> PeerProcess:
        log = (self.work / f"{Path(self.command[1]).stem}.log").open("wb")
        self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                        cwd=self.cwd or self.work,
                                        env={**os.environ, **(self.env or {})},
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command[1]} exited: see {log.name}")
            try:
                if httpx.get(self.probe, timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"{self.command[1]} not ready within {timeout:.0f} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)


def triton(entry: Path, work: Path) -> tuple[PeerProcess, str] | None:
    python = PEERS / "triton" / "bin" / "python"
    if not python.exists():
        print(f"skip: Triton rows ({python} missing: see this file's docstring)")
        return None
    port = free_port()
    peer = PeerProcess([str(python), str(ROOT / "benchmarks" / "peers" / "triton_copy.py"),
                        str(entry.resolve()), str(port)],
                       f"http://127.0.0.1:{port}/v2/models/{entry.name}/ready", work)
    return peer, f"http://127.0.0.1:{port}/v2/models/{entry.name}/infer"


def mlserver(entry: Path, work: Path) -> tuple[PeerProcess, str] | None:
    binary = PEERS / "mlserver" / "bin" / "mlserver"
    if not binary.exists():
        print(f"skip: MLServer rows ({binary} missing: see this file's docstring)")
        return None
    port = free_port()
    folder = work / "mlserver"
    (folder / entry.name).mkdir(parents=True)
    shutil.copy(ROOT / "benchmarks" / "peers" / "mlserver_runtime.py", folder / "runtime.py")
    (folder / "settings.json").write_text(json.dumps({
        "http_port": port, "grpc_port": free_port(), "metrics_port": free_port(),
        "host": "127.0.0.1", "parallel_workers": 0, "debug": False}))
    (folder / entry.name / "model-settings.json").write_text(json.dumps({
        "name": entry.name, "implementation": "runtime.OnnxLabels", "max_batch_size": 64,
        "max_batch_time": 0.002, "parameters": {"uri": str((entry / "model.onnx").resolve())}}))
    peer = PeerProcess([str(binary), "start", str(folder)],
                       f"http://127.0.0.1:{port}/v2/models/{entry.name}/ready", work,
                       env={"PYTHONPATH": str(folder)}, cwd=folder)
    return peer, f"http://127.0.0.1:{port}/v2/models/{entry.name}/infer"


def model_ceiling(entry: Path, batch: int = 32, seconds: float = 5.0) -> float:
    """Images/s of the ONNX graph alone (ONNX Runtime, every core, batch ``batch``)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(entry / "model.onnx"), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    images = np.random.default_rng(0).random((batch, 1, 28, 28), dtype=np.float32)
    for _ in range(20):
        session.run(None, {name: images})
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        session.run(None, {name: images})
        done += batch
    return done / (time.perf_counter() - started)


def oip_json_body(array: np.ndarray) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"inputs": [{"name": "images", "shape": [1, 28, 28, 1],
                                   "datatype": "UINT8",
                                   "data": array.reshape(-1).tolist()}]}).encode()
    return body, {"Content-Type": "application/json"}


# ---- wrk --------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def run_wrk(wrk: str, url: str, script: Path, connections: int, duration: float) -> dict:
    done = subprocess.run([wrk, "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency",
                           "--timeout", "10s", "-s", str(script), url],
                          capture_output=True, text=True, check=True)
    out = done.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sockets = re.search(r"Socket errors:.*", out)
    return {"rps": rate, "p99_ms": _ms(p99.group(1)) if p99 else None,
            "non_2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": sockets.group(0) if sockets else None}


def lua_script(work: Path, name: str, body: bytes, headers: dict[str, str]) -> Path:
    path = work / f"{name}.body"
    path.write_bytes(body)
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    script = work / f"{name}.lua"
    script.write_text(LUA.format(body=path, headers=lines))
    return script


# ---- report -----------------------------------------------------------------------------------


def summarise(points: list[dict], targets: list[str], levels: list[int]) -> dict[str, Any]:
    table: dict[str, dict[int, dict[str, Any]]] = {}
    for target in targets:
        for level in levels:
            runs = [p for p in points if p["target"] == target and p["c"] == level]
            if not runs:
                continue
            table.setdefault(target, {})[level] = {
                "rps": [min(r["rps"] for r in runs), max(r["rps"] for r in runs)],
                "rps_mean": sum(r["rps"] for r in runs) / len(runs),
                "p99_ms": [min(r["p99_ms"] or 0 for r in runs),
                           max(r["p99_ms"] or 0 for r in runs)],
                "non_2xx": sum(r["non_2xx"] for r in runs)}
    return table


def ratios(table: dict, levels: list[int]) -> dict[str, dict[int, float]]:
    pairs = {"OIP binary / Triton (same body)": ("oip copy", "triton oip-binary"),
             "OIP binary, baseline / Triton": ("oip copy (baseline)", "triton oip-binary"),
             "OIP JSON, baseline / MLServer": ("oip-json copy (baseline)", "mlserver oip-json"),
             "OIP binary / baseline": ("oip copy", "oip copy (baseline)"),
             "OIP JSON / MLServer (same body)": ("oip-json copy", "mlserver oip-json"),
             "png raw / TorchServe png": ("png-raw copy", "torchserve-png"),
             "png form / TorchServe png": ("png-form copy", "torchserve-png"),
             "OIP binary / TorchServe png": ("oip copy", "torchserve-png"),
             "CSRP on / off (OIP, graph)": ("oip csrp", "oip copy"),
             "CSRP on / off (OIP, torch path)": ("oip csrp torch", "oip copy"),
             "CSRP graph / torch path": ("oip csrp", "oip csrp torch")}
    out: dict[str, dict[int, float]] = {}
    for label, (top, bottom) in pairs.items():
        if top in table and bottom in table:
            out[label] = {c: round(table[top][c]["rps_mean"] / table[bottom][c]["rps_mean"], 3)
                          for c in levels if c in table[top] and c in table[bottom]}
    return out


# What each target is, as a reader names it (the keys stay the JSON's identifiers).
TARGET_LABELS = {
    "png-raw copy": "this server: PNG upload, raw body",
    "png-form copy": "this server: PNG upload, multipart form",
    "oip copy": "this server: OIP binary",
    "oip csrp": "this server: OIP binary, CSRP in the ONNX graph",
    "oip csrp torch": "this server: OIP binary, CSRP as a torch step (naive)",
    "oip-json copy": "this server: OIP JSON",
    "oip copy (baseline)": "baseline checkout: OIP binary",
    "oip-json copy (baseline)": "baseline checkout: OIP JSON",
    "triton oip-binary": "Triton (PyTriton): OIP binary",
    "mlserver oip-json": "MLServer: OIP JSON",
    "torchserve-png": "TorchServe: PNG upload",
}


def target_label(target: str) -> str:
    return TARGET_LABELS.get(target, target)


def markdown(table: dict, ratio: dict, levels: list[int], meta: dict) -> str:
    lines = [f"Peer benchmark ({meta['command']}), {meta['rounds']} interleaved rounds of "
             f"{meta['duration']:g} s per point, wrk one thread; {meta['cpus']} CPUs.", "",
             "| requests/s (p99 ms) | " + " | ".join(f"c={c}" for c in levels) + " |",
             "|---|" + "---:|" * len(levels)]
    for target, row in table.items():
        cells = []
        for c in levels:
            if c not in row:
                cells.append("-")
                continue
            r, p = row[c]["rps"], row[c]["p99_ms"]
            bad = f", {row[c]['non_2xx']} non-2xx" if row[c]["non_2xx"] else ""
            cells.append(f"{r[0]:.0f}-{r[1]:.0f} ({p[0]:.0f}-{p[1]:.0f}{bad})")
        lines.append(f"| {target_label(target)} | " + " | ".join(cells) + " |")
    lines += ["", "| ratio (mean requests/s) | " + " | ".join(f"c={c}" for c in levels) + " |",
              "|---|" + "---:|" * len(levels)]
    for label, row in ratio.items():
        lines.append(f"| {label} | " + " | ".join(f"{row[c]:.2f}" if c in row else "-"
                                                  for c in levels) + " |")
    if meta.get("model_ceiling_images_per_s"):
        lines += ["", f"The graph alone (ONNX Runtime, batch 32, every core): "
                      f"{meta['model_ceiling_images_per_s']:.0f} images/s. Share of it at "
                      f"c={meta['ceiling_share_at_c']} (one image per request): "
                  + ", ".join(f"{target_label(name)} {share:.0%}" for name, share in
                              meta["ceiling_share"].items()) + "."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repository", default="zoo")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--out", default="results/peer")
    parser.add_argument("--baseline", default=None, metavar="CHECKOUT",
                        help="another checkout of this project (e.g. `git worktree add ../before "
                             "COMMIT`): its server is measured too, on the OIP bodies")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    wrk = find_tool("wrk")
    if wrk is None:
        print("skip: wrk is not installed (apt-get install wrk)")
        return 0
    repository = Path(args.repository)
    png, array = sample_png()
    with tempfile.TemporaryDirectory(prefix="bench-peer-") as scratch:
        work = Path(scratch)
        peers: list[Any] = []  # stopped in the finally below, even when a start fails
        points: list[dict] = []
        try:
            ours = LocalServer(repository, "--models", "copy,csrp", threads=None).start()
            peers.append(ours)
            naive = LocalServer(repository, "--models", "csrp", "--preprocess-in", "torch",
                                threads=None).start()
            peers.append(naive)
            oip, oip_headers = oip_body(array)
            form, form_headers = form_body(png)
            targets: dict[str, tuple[str, Path]] = {
                "png-raw copy": (f"{ours.url}/v1/models/copy/classify",
                                 lua_script(work, "png", png, {"Content-Type": "image/png"})),
                "png-form copy": (f"{ours.url}/v1/models/copy/classify",
                                  lua_script(work, "form", form, form_headers)),
                "oip copy": (f"{ours.url}/v2/models/copy/infer",
                             lua_script(work, "oip", oip, oip_headers)),
                "oip csrp": (f"{ours.url}/v2/models/csrp/infer",
                             lua_script(work, "oip-csrp", oip, oip_headers)),
                "oip csrp torch": (f"{naive.url}/v2/models/csrp/infer",
                                   lua_script(work, "oip-csrp-torch", oip, oip_headers)),
            }
            json_body, json_headers = oip_json_body(array)
            if args.baseline:
                before = LocalServer(repository, "--models", "copy", threads=None,
                                     checkout=args.baseline).start()
                peers.append(before)
                targets["oip copy (baseline)"] = (f"{before.url}/v2/models/copy/infer",
                                                  lua_script(work, "oip-b", oip, oip_headers))
                targets["oip-json copy (baseline)"] = (
                    f"{before.url}/v2/models/copy/infer",
                    lua_script(work, "oip-json-b", *oip_json_body(array)))
            targets["oip-json copy"] = (f"{ours.url}/v2/models/copy/infer",
                                        lua_script(work, "oip-json", json_body, json_headers))
            for make, name, script in ((triton, "triton oip-binary", ("oip", oip, oip_headers)),
                                       (mlserver, "mlserver oip-json",
                                        ("json", json_body, json_headers))):
                made = make(repository / "copy", work)
                if made is not None:
                    peer, url = made
                    peers.append(peer.start())
                    targets[name] = (url, lua_script(work, f"peer-{script[0]}", script[1],
                                                     script[2]))
            missing = [tool for tool in ("torchserve", "torch-model-archiver", "java")
                       if not find_tool(tool)]
            if missing:
                print(f"skip: TorchServe rows ({', '.join(missing)} not installed)")
            else:
                serve = TorchServe(repository / "target", work / "torchserve").start()
                peers.append(serve)
                targets = {"torchserve-png": (f"{serve.url}/predictions/target",
                                              lua_script(work, "ts", png,
                                                         {"Content-Type": "image/png"})), **targets}
            for round_index in range(args.rounds):
                for level in levels:
                    for name, (url, script) in targets.items():
                        result = run_wrk(wrk, url, script, level, args.duration)
                        points.append({"round": round_index, "target": name, "c": level,
                                       **result})
                        print(f"round {round_index + 1} c={level:<3} {name:<16} "
                              f"{result['rps']:8.1f} req/s  p99 {result['p99_ms']} ms"
                              + (f"  {result['non_2xx']} non-2xx" if result["non_2xx"] else ""),
                              flush=True)
        finally:
            for peer in peers:
                peer.stop()
    table = summarise(points, list(targets), levels)
    ratio = ratios(table, levels)
    ceiling = model_ceiling(repository / "copy")
    top = max(levels)
    shares = {name: round(row[top]["rps_mean"] / ceiling, 3) for name, row in table.items()
              if top in row}
    meta = {"command": "python benchmarks/bench_peer.py " + " ".join(sys.argv[1:]),
            "rounds": args.rounds, "duration": args.duration, "cpus": os.cpu_count(),
            "code_version": code_version(), "time": time.strftime("%Y-%m-%dT%H:%M:%S+00:00",
                                                                  time.gmtime()),
            "model_ceiling_images_per_s": round(ceiling, 1), "ceiling_share_at_c": top,
            "ceiling_share": shares,
            "wrk": subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.strip()
            .splitlines()[0] if wrk else None}
    text = markdown(table, ratio, levels, meta)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "peer.json", {"meta": meta, "points": points, "table": table,
                                   "ratios": ratio})
    write_text(out / "peer.md", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
