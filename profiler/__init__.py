"""Collection and storage, one sub-package per stage: traces, collect, telemetry, store,
interchange, daemon. Never imports analysis or views."""
