"""Development tools shared by tests/ and bench/: real worker subprocesses, synthetic PDFs, the
PDF corpus. Never imported by the site (fca_site, documents, rag); an import contract keeps it so.
"""
