"""What the benchmarks share: quartiles of timings, the CPU's name and flags, an output that keeps a copy, and the
studies' definitions (the convolutional stem) for the benchmarks that build the conv-stem ViT."""

import importlib.util
import io
import platform
import statistics
import sys
import types
from pathlib import Path

STUDIES_COMMON = Path(__file__).resolve().parents[1] / "studies" / "common.py"


def studies_common() -> types.ModuleType:
    """studies/common.py as the module `studies_common` (this file is `common` on the benchmarks' path, so the
    studies' file is loaded by its path, under a name of its own). It loads the notebook's definitions once, as
    `studies_common().nb`, and registers the convolutional stem there (nb.STEMS["conv"]): a benchmark that needs the
    conv-stem ViT uses that `nb` rather than loading the notebook a second time, whose classes would differ."""
    if "studies_common" not in sys.modules:
        spec = importlib.util.spec_from_file_location("studies_common", STUDIES_COMMON)
        module = importlib.util.module_from_spec(spec)
        sys.modules["studies_common"] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules["studies_common"]
            raise
    return sys.modules["studies_common"]


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def cpu_description() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields = {}
    for line in info.splitlines():
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), value.strip())
    flags = fields.get("flags", "").split()
    wanted = [f for f in flags if f in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni") or f.startswith("amx")]
    absent = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_*") if f not in wanted
              and not (f == "amx_*" and any(w.startswith("amx") for w in wanted))]
    model = fields.get("model name", platform.processor() or platform.machine())
    family = f" (family {fields['cpu family']}, model {fields['model']})" if "cpu family" in fields else ""
    return (f"{model}{family}; flags: {' '.join(wanted) or 'none of those sought'}"
            + (f"; absent: {' '.join(absent)}" if absent else ""))


class Tee(io.TextIOBase):
    """Standard output that also keeps what is written to it."""

    def __init__(self, stream):
        self.stream, self.kept = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.kept.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def save(self, path: Path) -> None:
        """Write what was kept to `path` (its folder created), and say so."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.kept.getvalue())
        print(f"written to {path}")
