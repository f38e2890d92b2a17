"""The knowledge base: loaders, chunking, the index (Chroma + BM25) and the retriever."""
