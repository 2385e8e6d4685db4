"""Document retrieval: read documents, chunk them, embed the chunks with a bundled encoder, and search them by
meaning (faiss), by words (BM25) or both (reciprocal rank fusion). `modelyard index` builds an index folder;
`modelyard serve INDEX` answers /v1/embeddings and /v1/search from it (docs/retrieval.md)."""
