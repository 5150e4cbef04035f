"""How tests/data/store_v3.db.gz was written, kept for the record: with xprof at 327869d
(the commit before schema 4), synthetic runs only. From that checkout: python make_store_v3.py OUT.db"""
import sys
sys.path[:0] = [".", "tests"]
from profiler.store import Store
from profiler.traces.events import CPU_OP, MEMCPY, MemoryEvent, TraceEvent
from synthetic import add_run, add_events

store = Store.open(sys.argv[1])
a = add_run(store, [{"matmul": 1.0, "elementwise": 0.25}, {"matmul": 1.1, "elementwise": 0.3}],
            framework="torch", steps=3, started_at=1_700_000_000.0, env={"torch": "2.13.0"})
b = add_run(store, [{"matmul": 0.7, "convolution": 0.4}, {"matmul": 0.72, "convolution": 0.41}],
            framework="tensorflow", device="/device:GPU:0", steps=3, started_at=1_700_000_100.0,
            env={"tensorflow": "2.21.0"})
# events with what synthetic runs leave out: no op, no stream, no self time, correlations
add_events(store, b, 0, [
    TraceEvent("MemcpyHtoD", MEMCPY, 5_000_000, 20_000, "/device:GPU:0", "7", op=None, self_ns=None,
               correlation=41, step=2),
    TraceEvent("cudaLaunchKernel", CPU_OP, 4_900_000, 5_000, "cpu", None, op="cudaLaunchKernel",
               self_ns=4_000, correlation=42, step=2),
])
with store.transaction() as conn:
    for repeat in (0, 1):
        store.add_memory(conn, a["id"], repeat, [MemoryEvent(1_000 * i + repeat, 4096 if i % 3 else -4096,
                                                             8192 + 4096 * (i % 3), "cpu")
                                                 for i in range(12)])
        store.add_memory(conn, b["id"], repeat, [
            MemoryEvent(2_000 * i, 1 << 20 if i % 2 else -(1 << 20), (i + 1) << 20, "/device:GPU:0",
                        "GPU_0_bfc", total_reserved=64 << 20, peak_bytes_in_use=(i + 2) << 20,
                        fragmentation=(0.321786, 1e-7, None, 0.5)[i % 4]) for i in range(10)])
    store.add_artifact(conn, a["id"], "trace", "old.db.artifacts/%s/r0.pt.trace.json.gz" % a["id"],
                       "0" * 64, 1234, {"repeat": 0, "format": "kineto"})
store.close()
print(a["id"], b["id"])
