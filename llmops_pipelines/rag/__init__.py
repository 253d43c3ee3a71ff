"""RAG: chunking documents, syncing them into Chroma, retrieval (vector, BM25, hybrid), the app."""
