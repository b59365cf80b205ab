"""deid: find, tier and mask sensitive information in Chinese clinical notes.

Pure Python on strings: no Spark import anywhere in this package.
"""
__version__ = "0.3.0"


def __getattr__(name: str):
    """`from deid import Pipeline` for notebooks, without making every `import deid` load the detectors."""
    if name == "Pipeline":
        from deid.pipeline import Pipeline
        return Pipeline
    raise AttributeError(f"module 'deid' has no attribute {name!r}")
