"""spark-submit entry points (the Spark job, the SQL helper, the local LLM wrapper): thin shells over deid."""
