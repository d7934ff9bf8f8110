"""Documents: uploaded PDFs, their ingestion status and their chunks."""
