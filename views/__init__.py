"""Presentation: terminal tables and progress, the live watch view, Markdown and HTML
reviews, and how every number and label prints. Imports analysis results, never SQL."""
