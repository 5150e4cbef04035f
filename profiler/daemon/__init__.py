"""The daemon: its configuration, its files and lock, the schedule, the loop of cycles,
and starting or stopping it. It runs cycles through profiler.collect into profiler.store."""
