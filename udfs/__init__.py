"""Thin adapters from the deid library to Spark: the mapInArrow partition function and Delta I/O."""
