"""`deid serve`: the deployment (deid/serving/deployment.py) on a Ray started here for this machine alone, or on
the cluster that RAY_ADDRESS names, until SIGINT or SIGTERM; then Serve and Ray stop.

A Ray started here has no other nodes, so none of its servers needs the network: its node address is loopback,
and Ray then binds its own servers there (GCS, raylet and object manager, dashboard agent and metrics export,
runtime env agent, monitor, every worker's gRPC server). The dashboard is off, the Serve HTTP proxy listens on
the configured host (127.0.0.1 in serve-local.yaml) and Serve starts no gRPC proxy (no gRPC servicers given).
The one exception in Ray 2.60: each Serve replica's inter-deployment gRPC server binds "[::]:0" whatever the
options (ray/serve/_private/replica.py); Ray's token authentication, forced on here, guards it.
"""
import os
import signal

# Ray reads these at import: set them before Ray is imported in this process, and its children inherit them.
LOCAL_RAY_ENV = {
    # Ray's single-machine mode: the node address is 127.0.0.1. Without it, ray.init replaces even an explicit
    # loopback _node_ip_address with the machine's network address, and Ray's servers listen on every interface.
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    # Every Ray server asks for the session's token (~/.ray/auth_token), whatever the caller's environment says.
    "RAY_AUTH_MODE": "token",
}


def serve_forever(config: dict) -> None:
    """Start Ray (local unless RAY_ADDRESS says otherwise), run the app, stop everything on exit."""
    if not os.environ.get("RAY_ADDRESS"):
        os.environ.update(LOCAL_RAY_ENV)
    import ray
    from ray import serve

    from deid.serving.deployment import build_app
    host, port = config.get("host", "127.0.0.1"), int(config.get("port", 8765))
    # Block the stop signals before Ray starts its threads, so they all inherit the mask and only sigwait
    # below receives them: the finally clause then always runs and stops Serve and Ray.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    ray.init(include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    try:
        serve.start(http_options={"host": host, "port": port})
        serve.run(build_app(config), name="deid-llm", route_prefix="/")
        print(f"serving {config.get('model_name')} ({config.get('engine')}) on http://{host}:{port}", flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        serve.shutdown()
        ray.shutdown()
