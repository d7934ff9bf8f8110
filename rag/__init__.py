"""Async RAG service: PDF pages -> token-sized chunks -> embeddings -> pgvector.

This package imports no Django: its caller hands it a :class:`rag.config.RAGConfig`.
"""
