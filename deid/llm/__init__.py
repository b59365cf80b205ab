"""The LLM stage's pure parts: prompts as files, parsing model output back to spans, chunking long notes."""
