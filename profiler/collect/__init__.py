"""Collection: run settings, the collector interface and its torch and TensorFlow
collectors, the worker process, and the orchestrator that stores what workers measure.
Imports workloads, traces, telemetry and store; never analysis or views."""
