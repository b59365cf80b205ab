"""conf/serve-vllm.yaml against Ray's own models, on a CPU machine: the whole file as a Ray Serve config
(ServeDeploySchema, what `serve run` and `serve deploy` check), its application's args as build_openai_app reads
them (LLMServingArgs), and its LLMConfig validated by the pydantic model ray.serve.llm.LLMConfig subclasses
(strict: an unknown key fails; deployment_config through Serve's DeploymentConfig; the accelerator type against
Ray's list).

What cannot run here: build_openai_app itself. ray.serve.llm imports vLLM's OpenAI protocol models at import time
("Neither vLLM nor SGLang is installed"), and vLLM imports torch. So LLMServingArgs' fields are read from Ray's
source, and where vLLM is installed (a GPU node with `.[gpu]`) the last test builds the application object for
real. The engine_kwargs are checked against the pinned vLLM's engine arguments in tests/test_serve_vllm_api.py.
"""
import ast
import copy
import importlib.util
from pathlib import Path

import pytest
import yaml

from deid.serving.app import build_applications, http_address, is_serve_config, serve_schema

ROOT = Path(__file__).resolve().parent.parent
CONF = yaml.safe_load((ROOT / "conf" / "serve-vllm.yaml").read_text(encoding="utf-8"))
HAS_VLLM = importlib.util.find_spec("vllm") is not None


def llm_config_class():
    # ray.serve.llm.LLMConfig is `class LLMConfig(_LLMConfig): pass` over this one (ray/serve/llm/__init__.py),
    # which imports without vLLM.
    from ray.llm._internal.serve.core.configs.llm_config import LLMConfig
    source = Path(importlib.util.find_spec("ray.serve").submodule_search_locations[0], "llm", "__init__.py")
    text = source.read_text(encoding="utf-8")
    assert "LLMConfig as _LLMConfig" in text and "class LLMConfig(_LLMConfig):" in text
    return LLMConfig


def builder_source() -> str:
    spec = importlib.util.find_spec("ray.llm._internal.serve.core.ingress.builder")
    return Path(spec.origin).read_text(encoding="utf-8")


def llm_serving_args_fields() -> set[str]:
    tree = ast.parse(builder_source())
    (cls,) = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "LLMServingArgs"]
    return {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign)}


def validate(llm_config: dict):
    """What build_openai_app does with an LLMConfig before it needs vLLM: Ray's model validates it, and its
    deployment_config becomes keyword arguments of serve.deployment (core/server/builder.py), which takes no
    others (Ray's DeploymentConfig check lets an unknown key through)."""
    import inspect

    from ray import serve
    config = llm_config_class().model_validate(llm_config)
    unknown = set(config.deployment_config) - set(inspect.signature(serve.deployment).parameters)
    if unknown:
        raise ValueError(f"serve.deployment() takes no {sorted(unknown)}")
    assert "serve.deployment(deployment_cls, **deployment_options)" in Path(
        importlib.util.find_spec("ray.llm._internal.serve.core.server.builder").origin).read_text(encoding="utf-8")
    return config


def the_llm_config(conf=CONF) -> dict:
    (app,) = conf["applications"]
    (llm_config,) = app["args"]["llm_configs"]
    return llm_config


def test_the_file_is_a_ray_serve_config_of_build_openai_app():
    assert is_serve_config(CONF)
    schema = serve_schema(CONF)
    (app,) = schema.applications
    assert app.import_path == "ray.serve.llm:build_openai_app" and app.route_prefix == "/"
    assert (schema.http_options.host, schema.http_options.port) == http_address(CONF) == ("0.0.0.0", 8000)
    # build_openai_app validates its argument as LLMServingArgs; these are that model's fields.
    assert "LLMServingArgs.model_validate(builder_config)" in builder_source()
    assert set(app.args) <= llm_serving_args_fields() == {"llm_configs", "ingress_cls_config",
                                                          "ingress_deployment_config"}


def test_the_llm_config_validates_with_rays_model():
    config = validate(the_llm_config())
    assert config.model_id == "Qwen2.5-72B-Instruct"
    assert config.model_loading_config.model_source == "Qwen/Qwen2.5-72B-Instruct"
    assert config.llm_engine == "vLLM" and config.accelerator_type == "H100" and config.accelerator_config.kind == "gpu"
    assert config.engine_kwargs["tensor_parallel_size"] == 4 and config.engine_kwargs["dtype"] == "bfloat16"
    assert config.engine_kwargs["enable_prefix_caching"] is True
    autoscaling = config.deployment_config["autoscaling_config"]
    assert autoscaling["min_replicas"] >= 1 and autoscaling["max_replicas"] >= autoscaling["min_replicas"]
    assert config.deployment_config["max_ongoing_requests"] >= autoscaling["target_ongoing_requests"]


def test_the_served_model_id_is_the_model_the_cluster_job_asks_for():
    cluster = yaml.safe_load((ROOT / "conf" / "cluster-llm.yaml").read_text(encoding="utf-8"))
    llm = cluster["pipeline"]["overrides"]["llm"]
    assert llm["model"] == the_llm_config()["model_loading_config"]["model_id"]   # Ray routes by model id
    assert llm["base_url"].endswith(f":{CONF['http_options']['port']}")


@pytest.mark.parametrize("break_it", [
    lambda c: c.update(engine_kwarg=c.pop("engine_kwargs")),                      # a misspelt key
    lambda c: c.update(accelerator_type="H100-SXM-9000"),                          # not one of Ray's types
    lambda c: c["deployment_config"].update(max_replicas=8),                       # not a deployment option
    lambda c: c["deployment_config"]["autoscaling_config"].update(min_replicas=-1),
    lambda c: c["model_loading_config"].pop("model_id"),
], ids=["unknown-key", "accelerator", "deployment-option", "autoscaling", "no-model-id"])
def test_a_config_ray_would_refuse_fails_here(break_it):
    broken = copy.deepcopy(the_llm_config())
    break_it(broken)
    with pytest.raises(ValueError):           # pydantic's ValidationError is a ValueError
        validate(broken)


def test_a_serve_config_without_an_import_path_fails():
    broken = copy.deepcopy(CONF)
    del broken["applications"][0]["import_path"]
    with pytest.raises(ValueError):
        serve_schema(broken)


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed: the application is built below")
def test_without_vllm_deid_serve_stops_before_deploying_and_says_why():
    with pytest.raises(ImportError, match="vLLM"):
        build_applications(CONF)


@pytest.mark.skipif(not HAS_VLLM, reason="vLLM is not installed (GPU nodes: pip install '.[gpu]')")
def test_build_openai_app_builds_the_application():
    from ray.serve.deployment import Application
    ((name, route_prefix, app),) = build_applications(CONF)
    assert (name, route_prefix) == ("deid-llm", "/") and isinstance(app, Application)


def test_the_local_config_builds_its_deployment_with_the_replica_environment():
    from deid.serving.deployment import REPLICA_ENV
    local = yaml.safe_load((ROOT / "conf" / "serve-local.yaml").read_text(encoding="utf-8"))
    assert not is_serve_config(local) and http_address(local) == ("127.0.0.1", 8765)
    ((name, _, app),) = build_applications(local)
    options = app._bound_deployment.ray_actor_options
    assert options["runtime_env"]["env_vars"] == REPLICA_ENV and options["num_cpus"] == 1
    assert REPLICA_ENV == {"GGML_NO_BACKTRACE": "1", "GRPC_ENABLE_FORK_SUPPORT": "0"}


def test_deid_serve_runs_a_serve_config_as_ray_does(tmp_path):
    """The Serve-config path of `deid serve` for real, on CPU: the local llama.cpp application written as a Ray
    Serve config (import path and args, as conf/serve-vllm.yaml names build_openai_app), on loopback."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install '.[local-llm]')")
    import httpx
    from support import free_port

    from deid.serving.process import ServeProcess
    local = yaml.safe_load((ROOT / "conf" / "serve-local.yaml").read_text(encoding="utf-8"))
    config = {"proxy_location": "HeadOnly", "http_options": {"host": "127.0.0.1", "port": 8000},
              "applications": [{"name": "deid-llm", "route_prefix": "/",
                                "import_path": "deid.serving.deployment:build_app", "args": local}]}
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    server = ServeProcess(path, port=free_port(), capture=True)
    try:
        server.wait_healthy(300)
        assert httpx.get(server.url + "/v1/models", timeout=30).json()["data"][0]["id"] == local["model_name"]
    finally:
        server.stop()
