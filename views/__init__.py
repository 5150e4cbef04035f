"""Presentation: Markdown and self-contained HTML reviews of stored runs.

Beside the fixed layout because `analysis/` stays pure (rows in, rows out) and
`cli.py` stays thin; these turn the plain data of `analysis.summary` into documents.
"""
