"""Helpers shared by test modules: free loopback ports, Ray's processes, the real `deid serve` process."""
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent

# Fault rules for the served app (deid/serving/faults.py): a note holding one of these markers takes that path.
FAULTS = {"error": "<fault:http_500>", "delay": "<fault:slow>", "malformed": "<fault:malformed>"}
SLOW_FAULT_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def ray_processes() -> set[int]:
    out = set()
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "raylet" in cmd or "gcs_server" in cmd or "ray::" in cmd:
            out.add(p.info["pid"])
    return out


class Served:
    """`deid serve` on conf/serve-local.yaml plus the fault rules, on a free port; stop() checks no Ray
    process is left behind."""

    def __init__(self, workdir: Path):
        config = yaml.safe_load((ROOT / "conf" / "serve-local.yaml").read_text(encoding="utf-8"))
        config["faults"] = [{"when": FAULTS["error"], "action": "error"},
                            {"when": FAULTS["delay"], "action": "delay", "seconds": SLOW_FAULT_S},
                            {"when": FAULTS["malformed"], "action": "malformed"}]
        path = workdir / "serve.yaml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        self.before = ray_processes()
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "deid.cli", "serve", "--config", str(path), "--port",
                                      str(port)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(self.proc.stdout.read()[-3000:])
            time.sleep(1)
        self.proc.kill()
        raise RuntimeError("deid serve did not become healthy in 300 s")

    def stop(self) -> set[int]:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        time.sleep(2)
        return ray_processes() - self.before
