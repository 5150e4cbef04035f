"""The daemon: its configuration, its files and lock, the schedule, the loop of cycles,
and starting or stopping it. It imports collect, telemetry and store; never analysis or views."""
