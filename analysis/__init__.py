"""Analysis: per-run figures, statistics, diff, report, regressions, the watch snapshot and
review summaries. Of profiler it imports the store, trace record types and check settings;
never a framework, never views."""
