"""Helpers shared by test modules: free loopback ports, Ray's processes, the real `deid serve` with fault rules."""
import socket
import time
from pathlib import Path

import psutil
import yaml

from deid.serving.process import ServeProcess

ROOT = Path(__file__).resolve().parent.parent

# Fault rules for the served app (deid/serving/faults.py): a note holding one of these markers takes that path.
FAULTS = {"error": "<fault:http_500>", "delay": "<fault:slow>", "malformed": "<fault:malformed>"}
SLOW_FAULT_S = 150   # longer than any timeout a test gives a healthy request on a loaded machine


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
        self.server = ServeProcess(path, port=free_port(), capture=True)
        self.url = self.server.url
        try:
            self.server.wait_healthy(300)
        except RuntimeError:
            self.server.stop()
            raise

    def stop(self) -> set[int]:
        self.server.stop()
        time.sleep(2)
        return ray_processes() - self.before
