"""Analysis: per-run figures, statistics, diff, report, regressions, the watch snapshot and
review summaries. It reads the store through profiler.store and never imports a framework."""
