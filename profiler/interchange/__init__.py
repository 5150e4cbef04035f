"""Traces in and out: `xprof import` reads trace files into the store, `xprof export`
writes stored runs as Perfetto, TensorBoard or CSV. Imports traces, store and errors only."""
