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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from deid.serving.process import ServeProcess  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve-config", default=str(ROOT / "conf" / "serve-local.yaml"))
    ap.add_argument("--wait", type=float, default=300, help="seconds to wait for the server to become healthy")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    # A scheduler stops a task with SIGTERM: exit through `finally`, so the server (and Ray) stop with us.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    server = ServeProcess(args.serve_config)
    try:
        try:
            server.wait_healthy(args.wait)
        except RuntimeError as exc:
            print(f"error: the LLM server did not start: {exc}", file=sys.stderr)
            return 1
        print(f"LLM server healthy at {server.url}", flush=True)
        # Through a shell, so a command like `PATH=... spark-submit ...` keeps its environment assignments.
        return subprocess.call(shlex.join(command), shell=True, cwd=ROOT)
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
