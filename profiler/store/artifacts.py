"""Raw traces kept beside the store, gzip-compressed, with their sha256."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

# hashlib and zlib let go of the GIL while they work, but a thread must take it back
# between blocks, waiting up to 5 ms each time for a busy main thread: big blocks keep a
# hash or copy on another core from crawling (38 MB took 0.4 s in 1 MiB blocks).
BLOCK_BYTES = 8 << 20


def trace_suffix(path: Path) -> str:
    return "xplane.pb.gz" if ".xplane.pb" in path.name else "pt.trace.json.gz"


def keep_compressed(source: Path, target: Path) -> Path:
    if source.name.endswith(".gz"):
        shutil.copyfile(source, target)
    else:
        from isal import igzip  # 7 ms to import, on the thread that compresses

        # ISA-L's gzip at level 1: a 38 MB trace compresses in 0.03 s of CPU, against
        # 0.14 s for zlib at its level 1 (0.3 s at its default), to the same size
        with open(source, "rb") as src, igzip.open(target, "wb", compresslevel=1) as dst:
            shutil.copyfileobj(src, dst, BLOCK_BYTES)
    return target


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(BLOCK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()
