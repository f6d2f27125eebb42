"""Ingest: read .txt, .md, .html, .pdf and .docx files into normalised text with a block tree and spans."""
