"""The scheduler recipes in deploy/ (docs/schedule.md).

- The Airflow DAG is loaded by Airflow's own DagBag in a separate virtualenv (.venv-airflow, `make airflow-venv`:
  Airflow and the Spark provider at the exact versions of deploy/airflow/constraints-3.11.txt), its templates
  rendered, its secret hook run; the job's own argument parser accepts what it renders.
- The Databricks bundle's jobs and volume are read by databricks-bundles' typed models (same venv), which refuse an
  unknown field or a bad enum value; the top level against the keys Databricks' configuration reference lists.
- The cron line is parsed, and its command run with a stand-in spark-submit (the flock, the key file, the args).

The Airflow and bundle tests skip, saying so, where .venv-airflow is absent.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import zoneinfo
from pathlib import Path

import pytest

from deid.resources import bundle, combine_digests, digest_bytes

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
AIRFLOW_PYTHON = Path(os.environ.get("DEID_AIRFLOW_PYTHON", ROOT / ".venv-airflow" / "bin" / "python"))
needs_airflow_venv = pytest.mark.skipif(
    not AIRFLOW_PYTHON.exists(),
    reason=f"{AIRFLOW_PYTHON} is absent: `make airflow-venv` installs Airflow 3.3.2, its Spark provider and "
           "databricks-bundles there (deploy/airflow/requirements.txt, pinned by constraints-3.11.txt)")

SECRET = "test-hmac-key-not-real"
FAKE_ROOT = "/srv/deid"
DIGEST = "0123456789abcdef"

# Runs inside .venv-airflow: loads the DAG with DagBag, renders the deid_notes task, runs its pre_execute hook, and
# reads the bundle with databricks-bundles' models. Prints one JSON object.
PROBE = r'''
import copy, glob, importlib.util, json, re, sys
from pathlib import Path
import yaml
from airflow.dag_processing.dagbag import DagBag
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk.execution_time.context import VariableAccessor

root, digest = Path(sys.argv[1]), sys.argv[2]
out = {}
bag = DagBag(dag_folder=str(root / "deploy" / "airflow"))
out["import_errors"] = {str(k): str(v) for k, v in bag.import_errors.items()}
out["dag_ids"] = sorted(bag.dags)
dag = bag.dags["deid_nightly"]
out["dag"] = dict(schedule=str(dag.timetable.expression) if hasattr(dag.timetable, "expression") else None,
                  timetable=type(dag.timetable).__name__, timezone=str(dag.timezone), catchup=dag.catchup,
                  max_active_runs=dag.max_active_runs, params={k: dag.params[k] for k in dag.params},
                  tasks=sorted(t.task_id for t in dag.tasks))
t = dag.get_task("deid_notes")
out["task"] = dict(cls=type(t).__name__, is_spark_submit=isinstance(t, SparkSubmitOperator), conn_id=t._conn_id,
                   application=t.application, application_args=t.application_args, conf=t.conf,
                   env_vars=t.env_vars, retries=t.retries, retry_delay_s=t.retry_delay.total_seconds(),
                   retry_exponential_backoff=bool(t.retry_exponential_backoff),
                   upstream=sorted(t.upstream_task_ids),
                   pre_execute=getattr(t._pre_execute_hook, "__name__", None),
                   execution_timeout_s=t.execution_timeout.total_seconds() if t.execution_timeout else None)

class TI:
    def xcom_pull(self, task_ids=None, key="return_value", **kw):
        return digest if task_ids == "dictionary_digest" else None

task = copy.deepcopy(t)
context = {"var": {"value": VariableAccessor(deserialize_json=False), "json": VariableAccessor(deserialize_json=True)},
           "params": dict(out["dag"]["params"]), "ti": TI(), "task": task}
task.render_template_fields(context, dag.get_template_env())
rendered = {f: getattr(task, f)
            for f in ("application", "application_args", "conf", "env_vars", "name", "jars", "packages")}
out["rendered"] = rendered
digest_task = dag.get_task("dictionary_digest")
dt = copy.deepcopy(digest_task)
dt.render_template_fields(context, dag.get_template_env())
out["digest_task_args"] = list(dt.op_args)
task._pre_execute_hook(context)          # inject_secret: the key into spark-submit's environment
out["after_pre_execute_env"] = task.env_vars
spec = importlib.util.spec_from_file_location("deid_nightly_dag", root / "deploy" / "airflow" / "deid_nightly.py")
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
out["dictionaries_digest"] = {}
for folder in sys.argv[3:]:
    value, files = mod.dictionaries_digest(folder)
    out["dictionaries_digest"][folder] = [value, files]

# -- the bundle ------------------------------------------------------------------------------------------------
from databricks.bundles.jobs import Job
from databricks.bundles.volumes import Volume
bundle_dir = root / "deploy" / "databricks"
top = yaml.safe_load((bundle_dir / "databricks.yml").read_text())
docs = {"databricks.yml": top}
for pattern in top.get("include", []):
    for path in sorted(glob.glob(str(bundle_dir / pattern))):
        docs[str(Path(path).relative_to(bundle_dir))] = yaml.safe_load(Path(path).read_text())
jobs, volumes, errors = {}, {}, []
for name, doc in docs.items():
    for key, job in (doc.get("resources", {}).get("jobs") or {}).items():
        try:
            jobs[key] = dict(file=name, model=Job.from_dict(copy.deepcopy(job)).as_dict(), raw=job)
        except Exception as exc:
            errors.append(f"{name}: job {key}: {exc}")
    for key, vol in (doc.get("resources", {}).get("volumes") or {}).items():
        try:
            volumes[key] = dict(file=name, model=Volume.from_dict(copy.deepcopy(vol)).as_dict())
        except Exception as exc:
            errors.append(f"{name}: volume {key}: {exc}")
out["bundle"] = dict(files=sorted(docs), top=top, jobs=jobs, volumes=volumes, errors=errors,
                     text="\n".join(Path(bundle_dir / n).read_text() for n in docs))
print(json.dumps(out, default=str))
'''


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-home")
    other = tmp_path_factory.mktemp("resources")
    shutil.copytree(ROOT / "resources" / "dictionaries", other / "dictionaries")
    (other / "dictionaries" / "extra").mkdir()
    (other / "dictionaries" / "extra" / "local_hospitals.tsv").write_text("name\n测试医院\n", encoding="utf-8")
    (other / "lexicons").mkdir()
    (other / "lexicons" / "x.txt").write_text("not a dictionary\n")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON"))},
           "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(DEPLOY / "airflow"),
           "AIRFLOW_VAR_DEID_ROOT": FAKE_ROOT,
           "AIRFLOW_CONN_DEID_SECRET": json.dumps({"conn_type": "generic", "password": SECRET})}
    proc = subprocess.run([str(AIRFLOW_PYTHON), "-c", PROBE, str(ROOT), DIGEST, str(ROOT / "resources"), str(other)],
                          capture_output=True, text=True, env=env, timeout=300, cwd=home)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    report["other_resources"] = str(other)
    return report


def job_module():
    name = "deid_notes_job"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "jobs" / "deid_notes.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module          # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[name]


def job_dictionary_version(resources: Path) -> str:
    """jobs/deid_notes.py's dictionary_version (deid_runs.dictionary_version) for a resources folder."""
    files = bundle(resources)
    return combine_digests({k: digest_bytes(v) for k, v in files.items() if k.startswith("dictionaries/")})


# -- Airflow ---------------------------------------------------------------------------------------------------

@needs_airflow_venv
def test_dag_loads_without_import_errors(probe):
    assert probe["import_errors"] == {}
    assert probe["dag_ids"] == ["deid_nightly"]


@needs_airflow_venv
def test_dag_runs_nightly_one_at_a_time(probe):
    dag = probe["dag"]
    assert dag["schedule"] == "0 2 * * *"
    assert dag["timezone"] == "Asia/Shanghai"
    assert dag["catchup"] is False and dag["max_active_runs"] == 1
    assert dag["tasks"] == ["deid_notes", "dictionary_digest"]
    assert dag["params"] == {"reprocess": "affected", "secret_conn_id": "deid_secret"}


@needs_airflow_venv
def test_task_submits_the_job_with_reprocess_affected_and_retries(probe):
    task = probe["task"]
    assert task["cls"] == "SparkSubmitOperator" and task["is_spark_submit"]
    assert task["conn_id"] == "spark_default"                 # Variable deid_spark_conn_id unset
    assert task["upstream"] == ["dictionary_digest"]
    assert task["retries"] == 2 and task["retry_delay_s"] == 600 and task["retry_exponential_backoff"]
    assert task["pre_execute"] == "inject_secret"
    rendered = probe["rendered"]
    assert rendered["application"] == f"{FAKE_ROOT}/jobs/deid_notes.py"
    assert rendered["application_args"] == ["--config", f"{FAKE_ROOT}/conf/cluster.yaml", "--reprocess", "affected"]
    assert rendered["conf"] == {"spark.deid.dictionaryVersion": DIGEST}
    assert rendered["env_vars"] == {"DEID_RESOURCES": f"{FAKE_ROOT}/resources"}
    assert rendered["packages"] == "" and rendered["jars"] == ""            # Variables unset: no --packages/--jars
    assert probe["digest_task_args"] == [f"{FAKE_ROOT}/resources"]
    # The paths it renders are the checkout's, and the job's own parser accepts the arguments.
    for rel in ("jobs/deid_notes.py", "conf/cluster.yaml", "resources/dictionaries"):
        assert (ROOT / rel).exists(), rel
    args = job_module().parse_args(rendered["application_args"])
    assert args.reprocess == "affected" and args.config.endswith("conf/cluster.yaml")


@needs_airflow_venv
def test_secret_comes_from_the_connection_never_the_rendered_fields(probe):
    assert probe["after_pre_execute_env"] == {"DEID_RESOURCES": f"{FAKE_ROOT}/resources", "DEID_SECRET": SECRET}
    assert SECRET not in json.dumps(probe["rendered"]) and SECRET not in json.dumps(probe["task"])
    text = (DEPLOY / "airflow" / "deid_nightly.py").read_text()
    assert "DEID_SECRET" in text and not re.search(r"DEID_SECRET\s*[=:]\s*['\"]\w", text)


@needs_airflow_venv
def test_dag_digest_is_the_jobs_dictionary_version(probe):
    digests = probe["dictionaries_digest"]
    for folder in (ROOT / "resources", Path(probe["other_resources"])):
        value, files = digests[str(folder)]
        assert value == job_dictionary_version(folder)
        assert all(name.startswith("dictionaries/") for name in files)
    assert digests[str(ROOT / "resources")][0] != digests[probe["other_resources"]][0]


# -- Databricks ------------------------------------------------------------------------------------------------

# Top-level mappings of a bundle configuration, as Databricks' configuration reference lists them
# (databricks-bundles models resources, not the top level).
BUNDLE_TOP_LEVEL = {"artifacts", "bundle", "experimental", "include", "permissions", "presets", "python",
                    "resources", "run_as", "scripts", "sync", "targets", "variables", "workspace"}
# Databricks Runtime major version -> its Apache Spark minor version (release notes): pyspark must match.
RUNTIME_SPARK = {17: "4.0", 18: "4.1", 19: "4.2"}


@pytest.fixture(scope="module")
def bundle_report(probe):
    report = probe["bundle"]
    assert report["errors"] == []
    return report


def resolve_vars(value: str, variables: dict) -> str:
    return re.sub(r"\$\{var\.(\w+)\}", lambda m: str(variables[m.group(1)]["default"]), value)


@needs_airflow_venv
def test_bundle_structure_and_references(bundle_report):
    top = bundle_report["top"]
    assert set(top) <= BUNDLE_TOP_LEVEL, set(top) - BUNDLE_TOP_LEVEL
    assert top["bundle"]["name"] == "deid"
    assert bundle_report["files"] == ["databricks.yml", "resources/deid_jobs.yml"]
    assert set(bundle_report["jobs"]) == {"deid_nightly", "deid_dictionaries_published"}
    assert set(bundle_report["volumes"]) == {"deid"}
    declared = set(top["variables"])
    used = set(re.findall(r"\$\{var\.(\w+)\}", bundle_report["text"]))
    assert used <= declared, used - declared
    for ref in re.findall(r"\$\{resources\.jobs\.(\w+)\.id\}", bundle_report["text"]):
        assert ref in bundle_report["jobs"]
    artifact = top["artifacts"]["deid"]
    assert artifact["type"] == "whl" and (DEPLOY / "databricks" / artifact["path"] / "setup.py").exists()


@needs_airflow_venv
def test_bundle_job_is_a_wheel_task_on_a_matching_runtime(bundle_report):
    job = bundle_report["jobs"]["deid_nightly"]
    model, variables = job["model"], bundle_report["top"]["variables"]
    schedule = model["schedule"]
    fields = schedule["quartz_cron_expression"].split()
    assert len(fields) in (6, 7) and "?" in (fields[3], fields[5])       # Quartz: seconds first, ? for day
    assert fields[:3] == ["0", "0", "2"]
    zoneinfo.ZoneInfo(schedule["timezone_id"])
    assert model["max_concurrent_runs"] == 1 and model["queue"]["enabled"] is True
    [task] = model["tasks"]
    wheel = task["python_wheel_task"]
    assert wheel["package_name"] == re.search(r'name="([^"]+)"', (ROOT / "setup.py").read_text()).group(1)
    params = [resolve_vars(p, variables) for p in wheel["parameters"]]
    args = job_module().parse_args(params)
    assert args.reprocess == "affected" and args.config.startswith("/Volumes/")
    assert task["max_retries"] >= 1 and task["min_retry_interval_millis"] >= 60_000
    [lib] = task["libraries"]
    whl = (DEPLOY / "databricks" / Path(job["file"]).parent / lib["whl"]).resolve()
    assert whl.parent == ROOT / "dist"                                  # where the artifact build writes the wheel
    [cluster] = model["job_clusters"]
    spec = cluster["new_cluster"]
    assert task["job_cluster_key"] == cluster["job_cluster_key"]
    runtime = resolve_vars(spec["spark_version"], variables)
    pyspark = re.search(r'"pyspark==(\d+\.\d+)\.\d+"', (ROOT / "setup.py").read_text()).group(1)
    assert RUNTIME_SPARK[int(runtime.split(".")[0])] == pyspark, (runtime, pyspark)
    assert spec["data_security_mode"] == "SINGLE_USER"
    env = spec["spark_env_vars"]
    assert re.fullmatch(r"\{\{secrets/[\w.-]+/[\w.-]+\}\}", env["DEID_SECRET"])
    assert resolve_vars(env["DEID_RESOURCES"], variables).startswith("/Volumes/")


@needs_airflow_venv
def test_bundle_triggers_on_published_dictionaries(bundle_report):
    variables = bundle_report["top"]["variables"]
    nightly = bundle_report["jobs"]["deid_nightly"]["model"]
    trigger_job = bundle_report["jobs"]["deid_dictionaries_published"]["model"]
    url = resolve_vars(trigger_job["trigger"]["file_arrival"]["url"], variables)
    resources = resolve_vars(nightly["job_clusters"][0]["new_cluster"]["spark_env_vars"]["DEID_RESOURCES"], variables)
    assert url.startswith("/Volumes/") and url.endswith("/")
    # Release markers land outside $DEID_RESOURCES, so they never change the dictionaries' digest.
    assert not url.startswith(resources.rstrip("/") + "/") and url.rstrip("/") != resources.rstrip("/")
    assert trigger_job["trigger"]["pause_status"] == "UNPAUSED"
    [task] = trigger_job["tasks"]
    assert task["run_job_task"]["job_id"] == "${resources.jobs.deid_nightly.id}"
    assert "schedule" not in trigger_job and "trigger" not in nightly       # one trigger per Databricks job


def test_bundle_entry_point_is_a_console_script():
    """python_wheel_task runs the package's entry point by name: setup.py must declare it."""
    text = (DEPLOY / "databricks" / "resources" / "deid_jobs.yml").read_text()
    entry = re.search(r"entry_point:\s*([\w-]+)", text).group(1)
    scripts = re.search(r'"console_scripts":\s*\[([^\]]*)\]', (ROOT / "setup.py").read_text()).group(1)
    names = {s.split("=")[0].strip().strip('"') for s in scripts.split(",") if s.strip()}
    if entry not in names:
        pytest.xfail(f"setup.py declares no console_scripts entry point {entry!r} yet (docs/schedule.md: the job "
                     "as a wheel task)")
    assert entry in names


# -- cron ------------------------------------------------------------------------------------------------------

CRON_FIELDS = [("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7)]


def cron_field_ok(text: str, low: int, high: int) -> bool:
    for part in text.split(","):
        m = re.fullmatch(r"(\*|\d+(?:-\d+)?)(?:/(\d+))?", part)
        if not m:
            return False
        if m.group(1) != "*":
            bounds = [int(x) for x in m.group(1).split("-")]
            if not all(low <= b <= high for b in bounds) or bounds != sorted(bounds):
                return False
        if m.group(2) is not None and int(m.group(2)) == 0:
            return False
    return True


def cron_entries():
    env, jobs = {}, []
    for line in (DEPLOY / "cron" / "deid.cron").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)", line)
        if m:
            env[m.group(1)] = m.group(2)
            continue
        parts = line.split(None, 5)
        assert len(parts) == 6, f"not 5 fields and a command: {line}"
        jobs.append((parts[:5], parts[5]))
    return env, jobs


def test_cron_line_parses_and_its_script_exists():
    env, jobs = cron_entries()
    assert len(jobs) == 1
    fields, command = jobs[0]
    for value, (name, low, high) in zip(fields, CRON_FIELDS, strict=False):
        assert cron_field_ok(value, low, high), f"bad {name} field {value!r}"
    assert fields == ["0", "2", "*", "*", "*"]
    argv = shlex.split(command)
    assert argv[:2] == ["flock", "-n"] and argv[2].endswith(".lock")
    script = argv[3]
    assert script.startswith("$DEID_ROOT/") and "DEID_ROOT" in env
    local = ROOT / script.removeprefix("$DEID_ROOT/")
    assert local.is_file() and os.access(local, os.X_OK)
    subprocess.run(["bash", "-n", str(local)], check=True)
    assert "--reprocess affected" in local.read_text()


@pytest.fixture
def cron_sandbox(tmp_path):
    """The cron command with a stand-in spark-submit that records its arguments (and can linger)."""
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    record = tmp_path / "calls.jsonl"
    stub = venv_bin / "spark-submit"
    stub.write_text("#!/usr/bin/env python3\nimport json, os, sys, time\n"
                    f"open({str(record)!r}, 'a').write(json.dumps({{'argv': sys.argv[1:], "
                    "'has_key': os.environ.get('DEID_SECRET') == 'k3y-from-file'}) + '\\n')\n"
                    "time.sleep(float(os.environ.get('STUB_SLEEP', '0')))\n")
    stub.chmod(0o755)
    key = tmp_path / "secret"
    key.write_text("k3y-from-file")
    key.chmod(0o600)
    env, [(_, command)] = cron_entries()
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "DEID_ROOT": str(ROOT),
            "DEID_VENV": str(tmp_path / "venv"), "DEID_LOG_DIR": str(tmp_path / "logs"),
            "DEID_SECRET_FILE": str(key), "DEID_CONFIG": str(ROOT / "conf" / "local.yaml")}

    def run(wait=True, **extra):
        proc = subprocess.Popen(["/bin/sh", "-c", command], env={**base, **extra},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if wait:
            proc.out, proc.err = proc.communicate(timeout=60)
        return proc

    def calls():
        return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    return run, calls, key, tmp_path


def test_cron_command_submits_the_job_with_the_key_from_its_file(cron_sandbox):
    run, calls, key, tmp = cron_sandbox
    proc = run()
    assert proc.returncode == 0
    [call] = calls()
    assert call["has_key"]
    assert call["argv"][-5:] == [str(ROOT / "jobs" / "deid_notes.py"), "--config", str(ROOT / "conf" / "local.yaml"),
                                 "--reprocess", "affected"]
    assert "--driver-java-options" in call["argv"]
    [log] = (tmp / "logs").iterdir()
    assert "deid-nightly: config" in log.read_text() and "k3y-from-file" not in log.read_text()


def test_cron_command_refuses_a_key_file_others_can_read(cron_sandbox):
    run, calls, key, _ = cron_sandbox
    key.chmod(0o644)
    proc = run()
    assert proc.returncode == 2 and "chmod 600" in proc.err and calls() == []


def test_cron_flock_skips_a_run_while_one_is_running(cron_sandbox):
    run, calls, _, _ = cron_sandbox
    first = run(wait=False, STUB_SLEEP="4")
    deadline = time.monotonic() + 30
    while not calls() and time.monotonic() < deadline:
        time.sleep(0.1)
    second = run()
    assert second.returncode == 1                      # flock -n: the lock is held, the command never starts
    first.communicate(timeout=60)
    assert first.returncode == 0 and len(calls()) == 1
