"""LLM serving: a Ray Serve application with an OpenAI-compatible HTTP contract (vLLM or llama.cpp inside)."""
