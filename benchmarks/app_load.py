"""App load: many gradio_client users uploading at once to the Gradio app (app.py), all answered, and how fast.

`--clients` threads each make a `gradio_client.Client` and send `--uploads` files one after another to the app's
/classify endpoint, all starting together (a barrier). Every request is timed from the client's side (upload,
queue, decode, model, figures, the answer's return) and checked against the word its file is a recording of.
Reported: requests answered, failures (by message), wrong labels, latency p50/p95/max and requests/s.

The app runs as its own process (`python app.py` on 127.0.0.1 and a free port, the model given by --model through
KWS_MODEL), so the client threads do not share its interpreter; `--url` points at an app already running on this
machine instead. Only loopback addresses are accepted: this is a load generator, and it stays on this host.

    .venv/bin/python benchmarks/app_load.py [--clients 20] [--uploads 10] [--model runs/demo/model]
        [--data data/synth] [--url http://127.0.0.1:7860/]

Needs a trained model and test clips (`make demo` makes both; without data/synth the uploads are tones).
Prints a summary and writes benchmarks/results/app_load.json (atomically).
"""

from __future__ import annotations

import argparse
import collections
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import httpx
import numpy as np
from context import cpu_name, load1, machine_context

from kwslib.audio import write_wav
from kwslib.evaluation import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results" / "app_load.json"
REPO = Path(__file__).resolve().parent.parent
WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
START_TIMEOUT_SECONDS = 180  # app start-up (imports, model load) on a busy machine
REQUEST_TIMEOUT_SECONDS = 300  # one upload, queue wait included
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def pick_clips(data: Path, folder: Path) -> list[tuple[Path, str | None]]:
    """One test clip per keyword of `data` (from its testing_list.txt, else its word folders), the n-th word's clip
    the n-th of its list so that they come from different speakers; without data, three tones (no expected label)."""
    clips = []
    listed = (data / "testing_list.txt").read_text().split() if (data / "testing_list.txt").is_file() else []
    for n, word in enumerate(WORDS):
        ours = [data / rel for rel in listed if rel.startswith(f"{word}/")] or sorted((data / word).glob("*.wav"))
        if ours:
            clips.append((ours[n % len(ours)], word))
    if clips:
        return clips
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(16_000) / 16_000
    for f in (300, 500, 800):
        path = folder / f"tone{f}.wav"
        write_wav(path, (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32))
        clips.append((path, None))
    return clips


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(model: str, port: int, log_path: Path) -> subprocess.Popen:
    """`python app.py` on 127.0.0.1:`port` with KWS_MODEL=`model`; returns once it answers."""
    env = dict(os.environ)
    env.update(
        KWS_MODEL=model,
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_OFFLINE="1",
    )
    log = log_path.open("w")
    proc = subprocess.Popen([sys.executable, str(REPO / "app.py")], cwd=REPO, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with code {proc.returncode}; see {log_path}")
        try:
            if httpx.get(url + "config", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"app.py did not answer on {url} within {START_TIMEOUT_SECONDS} s; see {log_path}")


def run_client(url: str, model: str, clips, uploads: int, offset: int, barrier: threading.Barrier, out: list) -> None:
    """One user: a Client, then `uploads` files one after another; every outcome appended to `out`."""
    from gradio_client import Client, handle_file

    try:
        client = Client(url, verbose=False, httpx_kwargs={"timeout": REQUEST_TIMEOUT_SECONDS})
    except Exception as err:  # recorded as failures: a client that cannot connect is an unanswered user
        barrier.wait()
        out.extend({"ok": False, "error": f"connect: {type(err).__name__}: {err}"} for _ in range(uploads))
        return
    barrier.wait()
    for i in range(uploads):
        path, word = clips[(offset + i) % len(clips)]
        started = time.perf_counter()
        try:
            label = client.predict(handle_file(str(path)), model, 3, api_name="/classify")[0]
            seconds = time.perf_counter() - started
            got = label.get("label") if isinstance(label, dict) else None
            out.append(
                {"ok": got is not None, "seconds": seconds, "label": got, "expected": word, "path": str(path)}
                | {"error": None if got is not None else "no label in the answer"}
            )
        except Exception as err:
            out.append({"ok": False, "seconds": time.perf_counter() - started, "error": f"{type(err).__name__}: {err}"})


def local_labels(model: str, clips) -> dict[str, str]:
    """What the model itself answers for each clip, scored in this process (the reference for the app's answers)."""
    from kwslib.inference import Classifier

    clf = Classifier.load(model)
    return {str(path): clf.predict(str(path)).label for path, _ in clips}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20, help="concurrent users (default: 20)")
    parser.add_argument("--uploads", type=int, default=10, help="uploads per user, one after another (default: 10)")
    parser.add_argument("--model", default="runs/demo/model", help="model the app serves (default: runs/demo/model)")
    parser.add_argument("--data", default="data/synth", help="dataset whose test clips are uploaded")
    parser.add_argument("--url", help="an app already running on this machine (default: start app.py)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 64 or not 1 <= args.uploads <= 100:
        parser.error(f"--clients {args.clients} / --uploads {args.uploads}: keep to 1-64 clients and 1-100 uploads")
    if args.url and urllib.parse.urlparse(args.url).hostname not in LOOPBACK:
        parser.error(f"--url {args.url}: only an app on this machine (127.0.0.1 / localhost) may be load-tested")
    model_path = Path(args.model) if Path(args.model).is_absolute() else REPO / args.model
    if not args.url and not model_path.exists():
        parser.error(f"--model {args.model} does not exist; run `make demo` or pass a checkpoint folder / .onnx")

    load_before = load1()
    with tempfile.TemporaryDirectory(prefix="kws-app-load-") as tmp:
        tmp = Path(tmp)
        data = Path(args.data) if Path(args.data).is_absolute() else REPO / args.data
        clips = pick_clips(data, tmp / "tones")
        proc, url = None, args.url
        if url is None:
            port = free_port()
            proc = start_app(str(model_path), port, tmp / "app.log")
            url = f"http://127.0.0.1:{port}/"
        try:
            from gradio_client import Client, handle_file

            # The model's value in the app's dropdown, and one untimed request so the model is loaded and warm.
            warm = Client(url, verbose=False)
            choices = warm.view_api(print_info=False, return_format="dict")["named_endpoints"]["/classify"][
                "parameters"
            ][1]
            model_value = choices.get("parameter_default") or args.model
            warm.predict(handle_file(str(clips[0][0])), model_value, 3, api_name="/classify")

            outcomes: list[dict] = []
            barrier = threading.Barrier(args.clients)
            threads = [
                threading.Thread(
                    target=run_client, args=(url, model_value, clips, args.uploads, c, barrier, outcomes), daemon=True
                )
                for c in range(args.clients)
            ]
            server_cpu_before = cpu_seconds(proc.pid) if proc is not None else None
            client_cpu_before = time.process_time()
            started = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join(REQUEST_TIMEOUT_SECONDS * args.uploads)
            wall = time.perf_counter() - started
            client_cpu = time.process_time() - client_cpu_before
            server_cpu = cpu_seconds(proc.pid) - server_cpu_before if proc is not None else None
        finally:
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
    load_after = load1()

    expected_total = args.clients * args.uploads
    answered = [o for o in outcomes if o["ok"]]
    failures = collections.Counter(o["error"] for o in outcomes if not o["ok"])
    missing = expected_total - len(outcomes)  # threads still running at the deadline
    latencies = [o["seconds"] for o in answered]
    judged = [o for o in answered if o["expected"]]
    wrong = [o for o in judged if o["label"] != o["expected"]]
    # The app must answer exactly what the model answers for the same file, however loaded it is.
    local = local_labels(str(model_path), clips) if not args.url else {}
    mismatched = [o for o in answered if local and o["label"] != local[o["path"]]]
    summary = {
        "requests": expected_total,
        "answered": len(answered),
        "failures": len(outcomes) - len(answered) + missing,
        "failure_messages": dict(failures.most_common(5)),
        "unfinished_at_deadline": missing,
        "labelled_requests": len(judged),
        "wrong_labels": len(wrong),
        "model_accuracy_on_these_clips": 1 - len(wrong) / len(judged) if judged else None,
        "answers_differing_from_local_classifier": len(mismatched) if local else None,
        "latency_p50_s": percentile(latencies, 50),
        "latency_p95_s": percentile(latencies, 95),
        "latency_max_s": max(latencies) if latencies else None,
        "latency_mean_s": statistics.mean(latencies) if latencies else None,
        "requests_per_s": len(answered) / wall if wall else None,
        "wall_seconds": wall,
        # Where the CPU went: the app process per answered request, and this process's 20 client threads.
        "server_cpu_ms_per_request": 1000 * server_cpu / len(answered) if server_cpu is not None and answered else None,
        "client_cpu_seconds": client_cpu,
    }
    print(
        f"{cpu_name()}, {os.cpu_count()} CPUs, load {load_before:.2f} -> {load_after:.2f}; "
        f"{args.clients} clients x {args.uploads} uploads to {url} ({args.model})"
    )
    print(
        f"answered {summary['answered']}/{expected_total}, failures {summary['failures']}, "
        f"answers differing from the model run locally {summary['answers_differing_from_local_classifier']}, "
        f"wrong labels {len(wrong)}/{len(judged)} (the model's own errors); latency p50 {summary['latency_p50_s'] or 0:.2f} s, "
        f"p95 {summary['latency_p95_s'] or 0:.2f} s, max {summary['latency_max_s'] or 0:.2f} s; "
        f"{summary['requests_per_s'] or 0:.1f} requests/s over {wall:.1f} s"
    )
    if summary["server_cpu_ms_per_request"] is not None:
        print(
            f"CPU: app {summary['server_cpu_ms_per_request']:.0f} ms per request; clients {client_cpu:.1f} s in all "
            f"({(os.cpu_count() or 1) * wall:.0f} CPU-s on {os.cpu_count()} cores over the run, shared with the machine)"
        )
    for message, count in failures.most_common(5):
        print(f"  {count} x {message}")

    write_json_atomic(
        args.out,
        {
            "benchmark": "app_load",
            "unit": "seconds per /classify request, measured by the client (upload + queue + scoring + answer)",
            "baseline": "none: an absolute check that every request is answered, with latency under this load",
            "summary": summary,
            "settings": {
                "clients": args.clients,
                "uploads_per_client": args.uploads,
                "model": args.model,
                "clips": [str(p.relative_to(REPO)) if p.is_relative_to(REPO) else p.name for p, _ in clips],
                "app": "app.py in its own process on 127.0.0.1" if proc is not None else f"running app at {url}",
                "app_limits": "upload concurrency 2, queue size 64, 1 torch thread per request (AppConfig defaults)",
                "request_timeout_s": REQUEST_TIMEOUT_SECONDS,
            },
            "context": machine_context(load_before, packages=("gradio", "gradio_client", "torch")),
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
