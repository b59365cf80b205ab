"""python jobs/with_local_llm.py [--serve-config conf/serve-local.yaml] -- COMMAND ...

Starts `deid serve` (the Ray Serve app with the llama.cpp engine), waits until /health answers, runs COMMAND,
and stops the server whatever happens (SIGTERM; Serve and Ray shut down with it). Exits with COMMAND's status.
"""
from __future__ import annotations

import argparse
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve-config", default=str(ROOT / "conf" / "serve-local.yaml"))
    ap.add_argument("--wait", type=float, default=300, help="seconds to wait for the server to become healthy")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    conf = yaml.safe_load(Path(args.serve_config).read_text())
    url = f"http://{conf.get('host', '127.0.0.1')}:{conf.get('port', 8765)}/health"
    server = subprocess.Popen([sys.executable, "-m", "deid.cli", "serve", "--config", args.serve_config], cwd=ROOT)
    try:
        deadline = time.time() + args.wait
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.time() > deadline:
                print("error: the LLM server did not start", file=sys.stderr)
                return 1
            time.sleep(1)
        print(f"LLM server healthy at {url}", flush=True)
        # Through a shell, so a command like `PATH=... spark-submit ...` keeps its environment assignments.
        return subprocess.call(shlex.join(command), shell=True, cwd=ROOT)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(main())
