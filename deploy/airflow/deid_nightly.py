"""Airflow DAG `deid_nightly`: the deid Spark job every night at 02:00 Asia/Shanghai with `--reprocess affected`.

Two tasks:
  dictionary_digest  the digest of resources/dictionaries/ as the job computes it (deid_runs.dictionary_version),
                     computed on the worker from the same folder the job reads ($DEID_RESOURCES below)
  deid_notes         spark-submit jobs/deid_notes.py --config CONFIG --reprocess affected, with the digest as the
                     Spark conf spark.deid.dictionaryVersion (in the Spark UI and event log, and in this task's
                     rendered template), so a night's Airflow run, its Spark application and its deid_runs row
                     can be matched by one value

The job decides what to do: new and changed notes, plus, after a dictionary edit, exactly the notes that hold an
added or removed term (docs/schedule.md). It is idempotent, so the retries below are safe: a retried run finishes
the work of the failed one without duplicating a row.

Settings (none of them secret, none of them in this file):
  Airflow Variables  deid_root        the deid checkout on the worker (default /opt/deid)
                     deid_config      the job config (default {deid_root}/conf/cluster.yaml)
                     deid_resources   the resources folder the job and the digest read (default {deid_root}/resources)
                     deid_spark_packages, deid_spark_jars  Delta Lake for the native engine (delta.engine: native,
                                      as conf/cluster.yaml), e.g. io.delta:delta-spark_4.2_2.13:4.4.0, or the jar
                                      files `make install` fetches; spark-submit puts them on the classpath, which
                                      the job cannot do once it runs (default: none; without them the job's auto
                                      engine uses delta-rs)
                     deid_spark_conn_id  the Spark connection (default spark_default); read when the DAG is parsed,
                                      so set it as AIRFLOW_VAR_DEID_SPARK_CONN_ID on the DAG processor to spare a
                                      lookup per parse
  DAG params         reprocess        affected (default) or version
                     secret_conn_id   the connection whose password is the HMAC key (default deid_secret)
  DEID_SECRET        the password of connection `deid_secret`, resolved through Airflow's secrets backend (Vault,
                     AWS Secrets Manager, GCP Secret Manager, or AIRFLOW_CONN_DEID_SECRET) when the task starts,
                     after its templates are rendered and stored, so it is never in the rendered fields, the DAG
                     file or the metadata database's rendered-template table; Airflow masks it in task logs.
"""
from __future__ import annotations

import hashlib
import logging
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import DAG, BaseHook, Param, Variable, task
from airflow.sdk.exceptions import AirflowFailException
from airflow.sdk.log import mask_secret

log = logging.getLogger(__name__)

DAG_ID = "deid_nightly"
SCHEDULE = "0 2 * * *"               # 02:00 every night, in the DAG's time zone
TIMEZONE = "Asia/Shanghai"
SECRET_ENV = "DEID_SECRET"           # the job's pipeline.secret_env
DIGEST_CONF = "spark.deid.dictionaryVersion"

# Jinja, rendered when the task runs (no Variable lookup at parse time).
ROOT = "{{ var.value.get('deid_root', '/opt/deid') }}"
CONFIG = "{{ var.value.get('deid_config', var.value.get('deid_root', '/opt/deid') ~ '/conf/cluster.yaml') }}"
RESOURCES = "{{ var.value.get('deid_resources', var.value.get('deid_root', '/opt/deid') ~ '/resources') }}"
DIGEST = "{{ ti.xcom_pull(task_ids='dictionary_digest') }}"


def _digest(data: bytes) -> str:
    """deid.resources.digest_bytes."""
    return hashlib.sha256(data).hexdigest()[:16]


def dictionaries_digest(resources: str | Path) -> tuple[str, dict[str, str]]:
    """deid_runs.dictionary_version for a resources folder, and each dictionary file's digest.

    The job's formula (jobs/deid_notes.py: combine_digests over every file under dictionaries/, keyed by its path
    relative to the resources folder), restated here because the Airflow environment does not install deid;
    tests/test_schedule.py checks that both give the same value."""
    root = Path(resources)
    folder = root / "dictionaries"
    if not folder.is_dir():
        raise AirflowFailException(f"no dictionaries folder at {folder}: set the Airflow Variable deid_resources "
                                   "(or deid_root) to the deid resources the job reads")
    files = {str(p.relative_to(root)): _digest(p.read_bytes()) for p in sorted(folder.rglob("*"))
             if p.is_file() and "__pycache__" not in p.parts}
    joined = "\n".join(f"{k}={files[k]}" for k in sorted(files))
    return _digest(joined.encode()), files


def inject_secret(context) -> None:
    """pre_execute: DEID_SECRET into spark-submit's environment from the connection named by params.secret_conn_id.

    Runs after the rendered fields are stored, so the key is never among them."""
    conn_id = context["params"]["secret_conn_id"]
    secret = BaseHook.get_connection(conn_id).password
    if not secret:
        raise AirflowFailException(f"connection {conn_id!r} has no password: store the deid HMAC key there "
                                   "(the same key every night; another key re-processes every note)")
    mask_secret(secret, SECRET_ENV)
    op = context["task"]
    op.env_vars = {**(op.env_vars or {}), SECRET_ENV: secret}


with DAG(
    dag_id=DAG_ID,
    description="deid: de-identify new and changed notes nightly; re-mask exactly the notes a dictionary edit affects",
    schedule=SCHEDULE,
    start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
    catchup=False,                   # one run covers everything not yet landed: missed nights need no backfill
    max_active_runs=1,               # never two jobs over the same tables
    default_args={
        "owner": "deid",
        "retries": 2,
        "retry_delay": timedelta(minutes=10),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(hours=1),
    },
    params={
        "reprocess": Param("affected", enum=["affected", "version"],
                           description="affected: only notes holding a changed dictionary term; version: every "
                                       "note at another pipeline_version"),
        "secret_conn_id": Param("deid_secret", type="string",
                                description="Airflow connection whose password is the deid HMAC key"),
    },
    tags=["deid"],
) as dag:

    @task(task_id="dictionary_digest", retries=0)
    def dictionary_digest(resources: str) -> str:
        digest, files = dictionaries_digest(resources)
        for name, value in files.items():
            log.info("%s %s", value, name)
        log.info("dictionary_version %s (%d files under %s/dictionaries)", digest, len(files), resources)
        return digest

    digest = dictionary_digest(RESOURCES)

    deid_notes = SparkSubmitOperator(
        task_id="deid_notes",
        conn_id=Variable.get("deid_spark_conn_id", default="spark_default"),
        application=f"{ROOT}/jobs/deid_notes.py",
        application_args=["--config", CONFIG, "--reprocess", "{{ params.reprocess }}"],
        name="deid-notes",
        packages="{{ var.value.get('deid_spark_packages', '') }}",
        jars="{{ var.value.get('deid_spark_jars', '') }}",
        conf={DIGEST_CONF: DIGEST},
        env_vars={"DEID_RESOURCES": RESOURCES},
        pre_execute=inject_secret,
        execution_timeout=timedelta(hours=8),
    )

    digest >> deid_notes
