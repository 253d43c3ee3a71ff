"""`llmops serve`: the champion's RAG app behind an OpenAI-compatible endpoint, logged for monitoring."""
