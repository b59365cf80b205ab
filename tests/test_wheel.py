"""The wheel and the cluster path as a hospital runs them: the README's cluster recipe, run as written (with the
substitutions below), in a clean virtualenv outside the source tree, submitted to a real multi-process Spark
(`local-cluster`: a master, a worker and executor JVMs of their own) with the packed environment as --archives."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
JARS = sorted((ROOT / "build" / "delta-jars").glob("*.jar"))
DELTA_PACKAGES = "--packages io.delta:delta-spark_4.2_2.13:4.4.0"


def recipe() -> str:
    """The shell lines of README.md's cluster recipe (between the cluster-recipe markers)."""
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- cluster-recipe -->", 1)[1].split("<!-- /cluster-recipe -->", 1)[0]
    return block.split("```sh", 1)[1].split("```", 1)[0].strip()


def sh(command: str, cwd: Path, timeout: int = 900, env: dict | None = None) -> str:
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
    assert done.returncode == 0, (command[-300:], done.stdout[-3000:], done.stderr[-3000:])
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The recipe's build lines, in a folder outside the source tree: the wheel, a clean virtualenv with it, the
    packed environment. Substituted: the source folder for `.`, and this interpreter's pip for `pip`."""
    work = tmp_path_factory.mktemp("cluster")
    build = recipe().split("\nPATH=", 1)[0]
    build = build.replace("pip wheel --no-deps -w dist .", f"{sys.executable} -m pip wheel --no-deps -w dist {ROOT}")
    sh(build, work)
    assert (work / "deid-env.tar.gz").stat().st_size < 500 * 2**20   # without pyspark: executors have Spark's
    return work


def test_the_wheel_carries_its_data_and_runs_outside_the_source_tree(installed):
    env_python = installed / "env" / "bin" / "python"
    where = sh(f"{env_python} -c 'import deid, deid.detectors, jobs.deid_notes; "
               "from deid.resources import resources_dir; from deid.config import DEFAULT_CONFIG; "
               "print(deid.__file__, resources_dir(), DEFAULT_CONFIG)'", installed)
    assert str(ROOT) not in where and where.count(str(installed / "env")) == 3, where
    out = sh(f"{installed / 'env/bin/deid'} annotate --text '患者张三，电话13812345678，住北京市朝阳区建国路88号。'",
             installed)
    assert {"NAME", "CONTACT", "ADDRESS"} <= set(re.findall(r'"type": "(\w+)"', out))


@pytest.mark.parametrize("engine", ["delta-rs", "native"])
def test_the_cluster_recipe_runs_on_a_multi_process_spark(installed, engine):
    """Executors run the packed environment's python (./environment, unpacked from --archives) and get every
    resource from the driver's installed package. Substituted: local-cluster for yarn; for --packages, the jars
    `make install` fetched (native) or nothing (delta-rs); input and output paths for the config."""
    work = installed
    out = work / f"out-{engine}"
    if not (work / "sample" / "note").exists():
        sh(f"{work / 'env/bin/deid'} synth --n 40 --seed 3 --out sample --delta sample/note", work)
    submit = "PATH=" + recipe().split("\nPATH=", 1)[1]
    submit = submit.replace("--master yarn", "--master 'local-cluster[1,2,2048]' --conf spark.ui.enabled=false")
    if engine == "native":
        assert JARS, "Delta Lake's jars are not in build/delta-jars: `make install` fetches them (it needs mvn)"
        submit = submit.replace(DELTA_PACKAGES, "--jars " + ",".join(map(str, JARS)))
    else:
        submit = submit.replace(DELTA_PACKAGES + " ", "")
    submit = submit.replace("--config cluster.yaml", f"--input sample/note --output {out}")
    log = sh(submit + " 2>&1", work, env={"SPARK_LOCAL_IP": "127.0.0.1"})
    assert f"engine {engine}" in log and "succeeded: read 40 = written 40" in log, log[-3000:]
    spark_info = [line for line in log.splitlines() if re.match(r"\d\d/\d\d/\d\d [\d:]+ INFO ", line)]
    assert len(spark_info) <= 3, spark_info       # Spark's own INFO lines are off once the context starts
    assert DeltaTable(str(out / "note_deid_l3")).count() == 40
