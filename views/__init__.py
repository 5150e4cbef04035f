"""Presentation: terminal tables and progress, the live watch view, Markdown and HTML
reviews, and how every number and label prints. Imports analysis and profiler (export's
files, duration text), never SQL, never a framework."""
