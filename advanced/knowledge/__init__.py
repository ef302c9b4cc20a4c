"""The AI knowledge base: versioned documents with their embeddings, search, the embedding
providers, API and admin."""
