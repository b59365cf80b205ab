"""`deid serve`: an LLM server on a Ray started here for this machine alone, or on the cluster that RAY_ADDRESS
names, until SIGINT or SIGTERM; then Serve and Ray stop. Two kinds of config:

- deid's own (conf/serve-local.yaml: `engine: llama_cpp`): the local deployment, deid/serving/deployment.py.
- a Ray Serve config file (conf/serve-vllm.yaml: `applications:`), the format `serve run` and `serve deploy`
  take: each application's builder (`ray.serve.llm:build_openai_app` with its `args`, an LLMConfig list) is
  imported and called here, as `serve run` does, so a config Ray refuses fails in this process, before anything
  is deployed. `--port` overrides `http_options.port`.

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


def is_serve_config(config: dict) -> bool:
    """A Ray Serve config file (applications with import paths), not deid's own local-server config."""
    return "applications" in config


def http_address(config: dict) -> tuple[str, int]:
    """Where the server listens, from either kind of config."""
    if is_serve_config(config):
        http = config.get("http_options") or {}
        return http.get("host", "0.0.0.0"), int(http.get("port", 8000))   # Ray's defaults
    return config.get("host", "127.0.0.1"), int(config.get("port", 8765))


def serve_schema(config: dict):
    """The config checked by Ray's own ServeDeploySchema (what `serve run`/`serve deploy` check)."""
    from ray.serve.schema import ServeDeploySchema
    return ServeDeploySchema.model_validate(config)


def build_applications(config: dict) -> list[tuple[str, str, object]]:
    """(name, route prefix, Serve application) for each application of the config, built here."""
    if not is_serve_config(config):
        from deid.serving.deployment import build_app
        return [("deid-llm", "/", build_app(config))]
    from ray._common.utils import import_attr
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
    return [(app.name, app.route_prefix,
             call_user_app_builder_with_args_if_necessary(import_attr(app.import_path), app.args))
            for app in serve_schema(config).applications]


def serve_forever(config: dict) -> None:
    """Start Ray (local unless RAY_ADDRESS says otherwise), run the app(s), stop everything on exit."""
    if not os.environ.get("RAY_ADDRESS"):
        os.environ.update(LOCAL_RAY_ENV)
    import ray
    from ray import serve

    if is_serve_config(config):
        config = dict(config)
        port = config.pop("port", None)          # `deid serve --port`
        if port:
            config["http_options"] = {**(config.get("http_options") or {}), "port": int(port)}
        schema = serve_schema(config)
        start = {"http_options": schema.http_options.model_dump(), "proxy_location": schema.proxy_location}
    else:
        host, port = http_address(config)
        start = {"http_options": {"host": host, "port": port}}
    host, port = http_address(config)
    # Block the stop signals before Ray starts its threads, so they all inherit the mask and only sigwait
    # below receives them: the finally clause then always runs and stops Serve and Ray.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    ray.init(include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    try:
        applications = build_applications(config)
        serve.start(**start)
        for name, route_prefix, app in applications:
            serve.run(app, name=name, route_prefix=route_prefix)
        what = (", ".join(name for name, _, _ in applications) if is_serve_config(config)
                else f"{config.get('model_name')} ({config.get('engine', 'llama_cpp')})")
        print(f"serving {what} on http://{host}:{port}", flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        serve.shutdown()
        ray.shutdown()
