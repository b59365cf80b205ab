"""API drift between what deid relies on in vLLM, a GPU-only package, and the release setup.py's `gpu` extra pins,
checked on a CPU machine by reading that release's source instead of importing it (vLLM needs torch and CUDA).
deid calls no vLLM function itself (Ray Serve LLM runs vLLM); what it relies on is:

- the pair: Ray's `ray[llm]` extra requires exactly the vLLM the `gpu` extra pins, the other pins of that extra
  satisfy what Ray and vLLM require of them, and every `from vllm... import ...` in Ray's LLM package resolves
  in that release;
- conf/serve-vllm.yaml's engine_kwargs: Ray hands each key to vLLM's AsyncEngineArgs or FrontendArgs and refuses
  any other (ray/llm/_internal/serve/engines/vllm/vllm_models.py), and the values named exist;
- the request the client sends: fields of vLLM's ChatCompletionRequest, with the JSON schema as OpenAI's
  response_format json_schema (a name and a schema), which vLLM turns into structured outputs.

The release's files come from its wheel on PyPI, read with HTTP range requests (the zip's central directory and
the members needed: a few MB of the 316 MB wheel) and cached under ~/.cache/deid/pinned/; DEID_VLLM_WHEEL may
name a local copy of the wheel instead. Offline with nothing cached, these tests skip.
"""
from __future__ import annotations

import ast
import http.server
import importlib.metadata
import importlib.util
import io
import json
import os
import threading
import urllib.request
import zipfile
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
SETUP = (ROOT / "setup.py").read_text(encoding="utf-8")
SERVE_VLLM = yaml.safe_load((ROOT / "conf" / "serve-vllm.yaml").read_text(encoding="utf-8"))
MARKERS = {"python_version": "3.11", "sys_platform": "linux", "platform_system": "Linux",
           "platform_machine": "x86_64"}


def gpu_extra() -> dict[str, Requirement]:
    """The `gpu` extra's requirements, by package name, read from setup.py's EXTRAS (where it is a literal list)."""
    extras = next(node.value for node in ast.parse(SETUP).body
                  if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["EXTRAS"])
    gpu = next((value for key, value in zip(extras.keys, extras.values, strict=True)
                if isinstance(key, ast.Constant) and key.value == "gpu"), None)
    assert gpu is not None, "setup.py's EXTRAS has no \"gpu\" extra"
    reqs = [Requirement(r) for r in ast.literal_eval(gpu)]
    return {r.name.lower(): r for r in reqs}


def pinned(name: str) -> str:
    (spec,) = gpu_extra()[name].specifier
    assert spec.operator == "==", f"{name} is not pinned in the gpu extra"
    return spec.version


# ---------------------------------------------------------------------------------------------------------------
# The pinned wheel's files, without downloading the wheel


class RangeFile(io.RawIOBase):
    """A read-only, seekable file over HTTP range requests: what zipfile needs to read a remote wheel in part."""

    def __init__(self, url: str, size: int):
        self.url, self.size, self.pos = url, size, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self.pos

    def seek(self, offset, whence=io.SEEK_SET):
        self.pos = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence] + offset
        return self.pos

    def readinto(self, buffer):
        end = min(self.pos + len(buffer), self.size)
        if end <= self.pos:
            return 0
        request = urllib.request.Request(self.url, headers={"Range": f"bytes={self.pos}-{end - 1}"})
        with urllib.request.urlopen(request, timeout=60) as r:
            if r.status != 206:
                raise OSError(f"no range request support at {self.url} (HTTP {r.status})")
            data = r.read()
        buffer[:len(data)] = data
        self.pos += len(data)
        return len(data)


class PinnedWheel:
    """The files of vllm==VERSION's wheel: from the cache, a local wheel (DEID_VLLM_WHEEL) or PyPI."""

    def __init__(self, version: str):
        self.version = version
        self.cache = Path(os.environ.get("DEID_PINNED_CACHE", Path.home() / ".cache" / "deid" / "pinned")) / \
            f"vllm-{version}"
        self._zip = None
        self._names: frozenset[str] | None = None
        self._texts: dict[str, str] = {}

    def _open(self) -> zipfile.ZipFile:
        if self._zip is None:
            local = os.environ.get("DEID_VLLM_WHEEL")
            if local:
                assert f"vllm-{self.version}-" in Path(local).name, f"DEID_VLLM_WHEEL is not vllm {self.version}"
                self._zip = zipfile.ZipFile(local)
            else:
                try:
                    request = urllib.request.Request("https://pypi.org/simple/vllm/",
                                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
                    with urllib.request.urlopen(request, timeout=30) as r:
                        files = json.load(r)["files"]
                    wheel = next(f for f in files if f["filename"].startswith(f"vllm-{self.version}-")
                                 and f["filename"].endswith("x86_64.whl"))
                except (OSError, StopIteration, ValueError) as exc:
                    pytest.skip(f"vllm {self.version}'s wheel is not cached and PyPI cannot be read: {exc}")
                raw = RangeFile(wheel["url"], int(wheel["size"]))
                self._zip = zipfile.ZipFile(io.BufferedReader(raw, buffer_size=1 << 18))
        return self._zip

    def names(self) -> frozenset[str]:
        if self._names is None:
            cached = self.cache / "NAMES"
            if not cached.is_file():
                names = "\n".join(self._open().namelist())
                self.cache.mkdir(parents=True, exist_ok=True)
                cached.write_text(names, encoding="utf-8")
            self._names = frozenset(cached.read_text(encoding="utf-8").splitlines())
        return self._names

    def text(self, name: str) -> str:
        if name not in self._texts:
            cached = self.cache / name
            if not cached.is_file():
                assert name in self.names(), f"vllm {self.version}'s wheel has no {name}"
                data = self._open().read(name)          # zipfile checks the member's CRC-32
                cached.parent.mkdir(parents=True, exist_ok=True)
                cached.write_bytes(data)
            self._texts[name] = cached.read_text(encoding="utf-8")
        return self._texts[name]

    def module_file(self, module: str) -> str | None:
        base = module.replace(".", "/")
        return next((f for f in (f"{base}.py", f"{base}/__init__.py") if f in self.names()), None)

    def binds(self, module: str, name: str) -> bool:
        """`from module import name` works: a submodule, or a name the module binds (lazily, too)."""
        if self.module_file(f"{module}.{name}"):
            return True
        path = self.module_file(module)
        if path is None:
            return False
        tree = ast.parse(self.text(path))
        if name in top_level_names(tree):
            return True
        # A module-level __getattr__ (vllm/__init__.py's lazy attributes) binds the names it lists.
        return "__getattr__" in top_level_names(tree) and any(
            isinstance(n, ast.Constant) and n.value == name for n in ast.walk(tree))

    def dataclass_fields(self, path: str, cls: str) -> dict[str, ast.AnnAssign]:
        """Annotated fields of a class and of its bases defined in the same module."""
        classes = {n.name: n for n in ast.walk(ast.parse(self.text(path))) if isinstance(n, ast.ClassDef)}
        assert cls in classes, f"{cls} is not defined in vllm {self.version}'s {path}"
        out: dict[str, ast.AnnAssign] = {}
        for base in classes[cls].bases:
            if isinstance(base, ast.Name) and base.id in classes:
                out.update(self.dataclass_fields(path, base.id))
        out.update({n.target.id: n for n in classes[cls].body
                    if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)})
        return out


def top_level_names(tree: ast.Module) -> set[str]:
    names = set()

    def visit(body):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for h in getattr(node, "handlers", []):
                    visit(h.body)
    visit(tree.body)
    return names


@pytest.fixture(scope="module")
def vllm() -> PinnedWheel:
    return PinnedWheel(pinned("vllm"))


# ---------------------------------------------------------------------------------------------------------------
# The pair


def ray_llm_requirements() -> dict[str, Requirement]:
    """What `pip install ray[llm]` requires here (Python 3.11 on Linux x86-64), by package name."""
    out = {}
    for line in importlib.metadata.requires("ray") or []:
        r = Requirement(line)
        if r.marker is None or r.marker.evaluate({**MARKERS, "extra": "llm"}):
            out.setdefault(r.name.lower(), r)
    return out


def test_the_gpu_extra_pins_the_ray_that_is_installed_and_the_vllm_it_requires():
    assert pinned("ray") == importlib.metadata.version("ray")
    assert {"serve", "llm"} <= gpu_extra()["ray"].extras
    vllm_req = ray_llm_requirements()["vllm"]
    (spec,) = vllm_req.specifier
    assert spec.operator == "==" and spec.version == pinned("vllm"), \
        f"ray {pinned('ray')}[llm] requires {vllm_req}, the gpu extra pins vllm=={pinned('vllm')}"


def test_every_pin_of_the_gpu_extra_satisfies_ray_and_vllm(vllm):
    metadata = vllm.text(f"vllm-{vllm.version}.dist-info/METADATA")
    wanted = [Requirement(line.split(":", 1)[1].strip()) for line in metadata.splitlines()
              if line.startswith("Requires-Dist:")]
    wanted = [r for r in wanted if r.marker is None or r.marker.evaluate({**MARKERS, "extra": ""})]
    wanted += list(ray_llm_requirements().values())
    clashes = [f"{name}=={pinned(name)} against {r}" for r in wanted
               if (name := r.name.lower()) in gpu_extra() and name not in ("ray",)
               and not r.specifier.contains(pinned(name), prereleases=True)]
    assert not clashes, f"the gpu extra cannot be installed: {clashes}"


def vllm_import_groups(tree: ast.AST) -> list[list[list[tuple[str, str]]]]:
    """Each group: alternatives (a try body and its ImportError handlers), each a list of (module, name)."""
    def imports(nodes) -> list[tuple[str, str]]:
        found = []
        for stmt in nodes:
            for n in ast.walk(stmt):
                if isinstance(n, ast.ImportFrom) and n.level == 0 and (n.module or "").split(".")[0] == "vllm":
                    found += [(n.module, a.name) for a in n.names]
                    seen.add(id(n))
                elif isinstance(n, ast.Import):
                    found += [(a.name, "") for a in n.names if a.name.split(".")[0] == "vllm"]
                    seen.add(id(n))
        return found

    def catches_import_error(handler: ast.ExceptHandler) -> bool:
        types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        return any(isinstance(t, ast.Name) and t.id in ("ImportError", "ModuleNotFoundError", "Exception")
                   for t in types)

    seen: set[int] = set()
    groups = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(catches_import_error(h) for h in node.handlers):
            alternatives = [imports(node.body)] + [imports(h.body) for h in node.handlers]
            if alternatives[0]:
                groups.append([a for a in alternatives if a])
    for node in ast.walk(tree):
        if isinstance(node, (ast.ImportFrom, ast.Import)) and id(node) not in seen:
            one = imports([node])
            if one:
                groups.append([one])
    return groups


def test_every_vllm_import_in_rays_llm_package_resolves_in_the_pinned_vllm(vllm):
    package = Path(importlib.util.find_spec("ray.llm").submodule_search_locations[0])
    checked, missing = 0, []
    for path in sorted(package.rglob("*.py")):
        for alternatives in vllm_import_groups(ast.parse(path.read_text(encoding="utf-8"))):
            def ok(imports):
                return all(vllm.module_file(m) if not name else vllm.binds(m, name) for m, name in imports)
            checked += sum(len(a) for a in alternatives)
            if not any(ok(a) for a in alternatives):
                missing.append(f"{path.relative_to(package)}: {alternatives[0]}")
    assert checked > 40, f"only {checked} vLLM imports found in Ray's LLM package: the scan is broken"
    assert not missing, f"Ray {importlib.metadata.version('ray')} imports what vllm {vllm.version} lacks: {missing}"


def test_the_resolver_sees_a_name_that_is_not_there(vllm):
    # The checks above must be able to fail: the name the hand-written engine used is gone from vllm 0.29.
    assert vllm.binds("vllm.sampling_params", "StructuredOutputsParams")
    assert not vllm.binds("vllm.sampling_params", "GuidedDecodingParams")
    assert not vllm.binds("vllm.no_such_module", "X")


# ---------------------------------------------------------------------------------------------------------------
# conf/serve-vllm.yaml's engine arguments


def engine_kwargs() -> dict:
    (app,) = SERVE_VLLM["applications"]
    (llm_config,) = app["args"]["llm_configs"]
    return llm_config["engine_kwargs"]


def test_rays_rule_for_engine_kwargs_is_the_one_checked_here():
    source = Path(importlib.util.find_spec("ray.llm._internal.serve.engines.vllm.vllm_models").origin).read_text()
    for needle in ("from vllm.engine.arg_utils import AsyncEngineArgs",
                   "from vllm.entrypoints.launchers.cli_args import FrontendArgs",
                   "dataclasses.fields(AsyncEngineArgs)", "dataclasses.fields(FrontendArgs)",
                   'raise ValueError(f"Unknown engine argument: {key}")'):
        assert needle in source, f"Ray's vllm_models.py no longer has {needle!r}: update this test"


def test_every_engine_kwarg_is_a_vllm_engine_or_frontend_argument(vllm):
    known = set(vllm.dataclass_fields("vllm/engine/arg_utils.py", "AsyncEngineArgs")) | \
        set(vllm.dataclass_fields("vllm/entrypoints/launchers/cli_args.py", "FrontendArgs"))
    assert {"tensor_parallel_size", "max_model_len", "enable_prefix_caching"} <= known   # the parse works
    assert not set(engine_kwargs()) - known, f"not vllm {vllm.version} arguments: {set(engine_kwargs()) - known}"
    assert not {"model", "served_model_name"} & set(engine_kwargs())    # Ray sets these from model_loading_config


def literal_values(vllm: PinnedWheel, path: str, name: str) -> set[str]:
    for node in ast.walk(ast.parse(vllm.text(path))):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return {n.value for n in ast.walk(node.value) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    raise AssertionError(f"{name} is not in vllm {vllm.version}'s {path}")


def test_the_dtype_and_the_fp8_alternative_exist(vllm):
    assert engine_kwargs()["dtype"] in literal_values(vllm, "vllm/config/model.py", "ModelDType")
    assert "fp8" in literal_values(vllm, "vllm/model_executor/layers/quantization/__init__.py",
                                   "QuantizationMethods")      # the FP8, tensor-parallel-2 alternative


# ---------------------------------------------------------------------------------------------------------------
# The request the client sends


class Recorder(http.server.BaseHTTPRequestHandler):
    bodies: list[dict] = []

    def do_POST(self):
        Recorder.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        answer = json.dumps({"choices": [{"message": {"role": "assistant", "content": '{"entities": []}'},
                                          "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": 1, "completion_tokens": 1}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_):
        pass


def sent_request(**client) -> dict:
    """The body the LLM stage sends for one note (JSON format), as a server receives it; `client`: settings."""
    from deid.llm.client import ClientConfig
    from deid.llm.stage import LlmConfig, LlmStage
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        Recorder.bodies.clear()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        (outcome,) = LlmStage(LlmConfig(enabled=True, client=ClientConfig(base_url=url, retries=0, **client))).run(
            ["患者张建国，手机13812345678。"])
        assert outcome.status == "ok"
    finally:
        server.shutdown()
        server.server_close()
    (body,) = Recorder.bodies
    return body


def model_fields(vllm: PinnedWheel, path: str, cls: str) -> tuple[set[str], set[str]]:
    """(accepted keys, required keys) of a pydantic model in vllm's source; aliases count as keys."""
    accepted, required = set(), set()
    for name, node in vllm.dataclass_fields(path, cls).items():
        key = name
        if isinstance(node.value, ast.Call):
            alias = next((k.value.value for k in node.value.keywords if k.arg == "alias"), None)
            key = alias or name
            positional = node.value.args[0] if node.value.args else None
            has_default = (positional is not None and not (isinstance(positional, ast.Constant)
                                                           and positional.value is Ellipsis)) or \
                any(k.arg in ("default", "default_factory") for k in node.value.keywords)
        else:
            has_default = node.value is not None
        accepted.add(key)
        if not has_default:
            required.add(key)
    return accepted, required


def test_the_clients_request_is_one_vllms_openai_server_accepts(vllm):
    body = sent_request(repetition_penalty=1.1)     # every field the client may send
    assert body["repetition_penalty"] == 1.1
    chat = "vllm/entrypoints/openai/chat_completion/protocol.py"
    accepted, required = model_fields(vllm, chat, "ChatCompletionRequest")
    assert set(body) <= accepted and required <= set(body), (set(body) - accepted, required - set(body))
    fmt = body["response_format"]
    base = "vllm/entrypoints/generate/base/protocol.py"
    assert vllm.binds("vllm.entrypoints.openai.chat_completion.protocol", "AnyResponseFormat")
    accepted, required = model_fields(vllm, base, "ResponseFormat")
    assert fmt["type"] == "json_schema" and set(fmt) <= accepted and required <= set(fmt)
    accepted, required = model_fields(vllm, base, "JsonSchemaResponseFormat")
    schema = fmt["json_schema"]
    assert set(schema) <= accepted and required <= set(schema), \
        f"json_schema {sorted(schema)}: vllm {vllm.version} takes {sorted(accepted)}, needs {sorted(required)}"
    from deid.llm.parse import ENTITY_SCHEMA
    assert schema["schema"] == ENTITY_SCHEMA
    # ... and turns it into structured outputs: json_schema.schema becomes StructuredOutputsParams(json=...).
    assert 'overrides = {"json": json_schema.json_schema}' in vllm.text(base)
    assert "json" in vllm.dataclass_fields("vllm/sampling_params.py", "StructuredOutputsParams")


def test_a_json_schema_without_a_name_would_be_refused(vllm):
    # The check above can fail: the body deid sent before (no name) misses a required field.
    _, required = model_fields(vllm, "vllm/entrypoints/generate/base/protocol.py", "JsonSchemaResponseFormat")
    assert "name" in required
