"""`deid serve` as a child process: started on a config (and optionally another port), waited for until
/health answers, and stopped with SIGTERM (Serve and Ray shut down with it). Used by jobs/with_local_llm.py
and by the tests."""
from __future__ import annotations

import http.client
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml


class ServeProcess:
    def __init__(self, config_path: str | Path, port: int | None = None, capture: bool = False):
        from deid.serving.app import http_address
        host, conf_port = http_address(yaml.safe_load(Path(config_path).read_text(encoding="utf-8")) or {})
        host = "127.0.0.1" if host in ("0.0.0.0", "::") else host      # listening everywhere: ask on loopback
        self.url = f"http://{host}:{port or conf_port}"
        command = [sys.executable, "-m", "deid.cli", "serve", "--config", str(config_path)]
        if port:
            command += ["--port", str(port)]
        # Captured output goes to a file, not a pipe: nobody reads a pipe while the server runs, and a full one
        # would stall it.
        self.log = tempfile.TemporaryFile("w+", encoding="utf-8") if capture else None
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT if capture else None)

    def wait_healthy(self, timeout_s: float) -> None:
        """Return once /health answers 200; raise RuntimeError if the server exits or the time runs out."""
        deadline = time.time() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except (OSError, http.client.HTTPException):   # not listening yet, or not answering HTTP yet
                pass
            if self.proc.poll() is not None:
                tail = ""
                if self.log:
                    self.log.seek(0)
                    tail = self.log.read()[-3000:]
                raise RuntimeError(f"deid serve exited with status {self.proc.returncode}\n{tail}".rstrip())
            if time.time() > deadline:
                raise RuntimeError(f"deid serve did not become healthy in {timeout_s:.0f} s")
            time.sleep(1)

    def stop(self, timeout_s: float = 60) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.log:
            self.log.close()
