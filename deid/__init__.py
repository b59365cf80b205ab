"""deid: find, tier and mask sensitive information in Chinese clinical notes.

Pure Python on strings: no Spark import anywhere in this package.
"""
__version__ = "0.3.0"
