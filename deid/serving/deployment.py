"""The Ray Serve deployment: OpenAI-compatible POST /v1/chat/completions, GET /v1/models, GET /health.

Requests are grouped by @serve.batch so the engine sees full batches; max_ongoing_requests must be at least the
batch size (Serve's default of 5 would cap every batch at 5). Settings come from conf/serve-local.yaml. This is the
local (llama.cpp) server; production serving is Ray Serve LLM with vLLM (conf/serve-vllm.yaml, deid/serving/app.py).

The batch handler starts the batch's generations together and returns at once with one task per request;
each caller awaits its own. A handler that returned the answers themselves made a quick answer (or a quick
error) wait for the slowest request of its batch, and a long generation held the batch slot so that every
later request waited too (found by the fault tests). vLLM batches continuously inside the engine anyway.
"""
# No `from __future__ import annotations` here: FastAPI must see the Request annotation as a class.
import asyncio
import os

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve

api = FastAPI(title="deid LLM", docs_url=None, redoc_url=None)

# The replica's environment from its first instruction (Ray sets runtime_env env_vars before the worker starts).
# The replica aborted under load with gRPC's `Check failed: is_forking != was_forking` (work_stealing_thread_pool.cc).
# What forks in it is ggml: on a failed GGML_ASSERT (and from its std::terminate handler) it fork()s `gdb -p` to
# print a backtrace. An assertion in an op that every compute thread runs fails in both threads at once, both
# fork, gRPC (grpcio, loaded by Serve) runs its pthread_atfork handlers in both, and its CHECK aborts the process
# before ggml's message is seen. Reproduced with the engine's old lock (released with a cancelled caller, so two
# generations ran on one llama.cpp context): `ops.cpp:5488: GGML_ASSERT(i1 >= 0 && i1 < ne1) failed` twice, then
# the CHECK. The lock is the fix (engines.py); these keep any later abort a plain one that says what failed.
# Nothing else forks in a serving replica (strace -f -e clone,clone3,fork,vfork on it during requests: threads).
REPLICA_ENV = {
    "GGML_NO_BACKTRACE": "1",           # no debugger forked from a gRPC process: an abort says what failed
    "GRPC_ENABLE_FORK_SUPPORT": "0",    # no gRPC fork handlers: the replica never forks a child that uses gRPC
}


@serve.deployment(name="deid-llm")
@serve.ingress(api)
class ChatServer:
    def __init__(self, config: dict):
        import ray

        from deid.serving.engines import make_engine
        from deid.serving.faults import with_faults
        self.config = config
        self.actor_id = ray.get_runtime_context().get_actor_id()
        self.engine = with_faults(make_engine(config), config.get("faults"))
        batch = config.get("batch") or {}
        self.submit_batch.set_max_batch_size(int(batch.get("max_batch_size", 8)))
        self.submit_batch.set_batch_wait_timeout_s(float(batch.get("batch_wait_timeout_s", 0.02)))

    @api.get("/health")
    async def health(self) -> dict:
        # The replica's process and actor: a restarted or replaced replica answers with others (the soak test).
        return {"status": "ok", "model": self.engine.model_name,
                "replica": {"pid": os.getpid(), "actor_id": self.actor_id}}

    @api.get("/v1/models")
    async def models(self) -> dict:
        return {"object": "list", "data": [{"id": self.engine.model_name, "object": "model", "owned_by": "deid"}]}

    @api.post("/v1/chat/completions")
    async def chat(self, request: Request):
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": {"message": "body is not JSON", "type": "invalid_request_error"}}, 400)
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            return JSONResponse({"error": {"message": "messages must be a non-empty list", "type":
                                           "invalid_request_error"}}, 400)
        task = await self.submit_batch(body)
        try:
            return await task
        except asyncio.CancelledError:
            task.cancel()          # the client went away: stop waiting or generating for it
            raise
        except Exception as exc:  # noqa: BLE001 - any engine failure is a 500
            # No request content in the message: it may hold note text.
            return JSONResponse({"error": {"message": f"generation failed: {type(exc).__name__}",
                                           "type": "server_error"}}, 500)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.02)
    async def submit_batch(self, bodies: list[dict]) -> list[asyncio.Task]:
        return [asyncio.ensure_future(self.engine.complete(b)) for b in bodies]


def build_app(config: dict):
    replicas = config.get("replicas", 1)
    batch = int((config.get("batch") or {}).get("max_batch_size", 8))
    actor_options = dict(config.get("ray_actor_options") or {"num_cpus": 1})
    runtime_env = dict(actor_options.get("runtime_env") or {})
    runtime_env["env_vars"] = {**REPLICA_ENV, **(runtime_env.get("env_vars") or {})}
    actor_options["runtime_env"] = runtime_env
    options = {"max_ongoing_requests": max(int(config.get("max_ongoing_requests", 2 * batch)), batch),
               "ray_actor_options": actor_options}
    if isinstance(replicas, dict):   # autoscaling: {min_replicas, max_replicas, target_ongoing_requests}
        options["autoscaling_config"] = replicas
    else:
        options["num_replicas"] = int(replicas)
    return ChatServer.options(**options).bind(config)

