"""The results: the machine, a plain-text table, Markdown, JSON and the plot."""

from __future__ import annotations

import dataclasses
import os
import platform

import jax
import numpy as np

from ._common import FUNCTIONS, Row


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    device = jax.devices()[0]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average": load,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": getattr(jax.lib, "__version__", None) or _jaxlib_version(),
        "backend": device.platform,
        "device": getattr(device, "device_kind", str(device)),
        "x64": bool(jax.config.jax_enable_x64),
    }


def _jaxlib_version() -> str | None:
    try:
        import jaxlib
        return jaxlib.__version__
    except Exception:
        return None


def _fmt_value(value: float, unit: str) -> str:
    if unit == "s":
        for scale, suffix in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
            if abs(value) >= scale:
                return f"{value / scale:.3g} {suffix}"
        return f"{value * 1e9:.3g} ns"
    if unit == "flops":
        return f"{value:.6g}"
    return f"{value:+.1f} {unit}"


def _fmt_ratio(row: Row) -> str:
    if row.ratio is None:
        return "-"
    if row.unit == "flops":
        return f"{row.ratio:.4f}"
    return f"{row.ratio:.4g}" if row.ratio < 0.01 else f"{row.ratio:.3f}"


_HEADER = ("benchmark", "function", "n", "jaxworld", "baseline", "baseline is", "ratio",
           "target", "met")


def _cells(row: Row) -> tuple[str, ...]:
    met = "-" if row.met is None else ("yes" if row.met else "NO")
    return (row.benchmark, row.function, "-" if row.n is None else str(row.n),
            _fmt_value(row.jaxworld, row.unit), _fmt_value(row.baseline, row.unit),
            row.baseline_is, _fmt_ratio(row), row.target or "-", met)


def format_table(rows: list[Row]) -> str:
    """A plain-text table, one row per measurement, ratio = jaxworld / baseline."""
    cells = [_HEADER] + [_cells(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(_HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
             for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown(rows: list[Row], meta: dict) -> str:
    m = meta["machine"]
    out = [
        "| " + " | ".join(_HEADER) + " |",
        "|" + "|".join("---" for _ in _HEADER) + "|",
    ]
    for r in rows:
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in _cells(r)) + " |")
    out += [
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['backend']} ({m['device']}); "
        f"jax {m['jax']}, jaxlib {m['jaxlib']}, Python {m['python']}; "
        f"load average at start {meta['load_average_start']}, at end "
        f"{meta['load_average_end']}. Total time {meta['seconds']:.0f} s. "
        f"Command: `{meta['command']}`.",
        "",
    ]
    return "\n".join(out)


def to_json(rows: list[Row], meta: dict) -> dict:
    return {"meta": meta, "results": [dataclasses.asdict(r) for r in rows]}


_PLOTTED = ("steady grad", "steady hvp", "steady hessian", "first call hessian",
            "relevant change", "relevant change, plain invalidated", "no-op advance")


def plot(rows: list[Row], path: str, meta: dict) -> None:
    """Overhead (ratio jaxworld / baseline) vs input size, one panel per function."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(FUNCTIONS), figsize=(6 * len(FUNCTIONS), 4.2), sharey=True)
    for ax, name in zip(np.atleast_1d(axes), FUNCTIONS, strict=True):
        for bench in _PLOTTED:
            pts = sorted((r.n, r.ratio) for r in rows
                         if r.function == name and r.benchmark == bench and r.ratio is not None)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=bench)
        ax.axhline(1.0, color="black", lw=0.8)
        ax.axhline(1.02, color="grey", lw=0.8, ls=":")
        ax.axhline(1.10, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("input size n")
        ax.set_title(name)
        ax.grid(True, which="both", alpha=0.3)
    first = np.atleast_1d(axes)[0]
    first.set_ylabel("jaxworld / baseline (median ratio)")
    labelled = {}
    for ax in np.atleast_1d(axes):
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=False):
            labelled.setdefault(label, handle)
    if labelled:
        first.legend(list(labelled.values()), list(labelled), fontsize=8)
    m = meta["machine"]
    fig.suptitle(f"jaxworld overhead vs plain JAX ({m['cpu']}, {m['cores']} cores, "
                 f"jax {m['jax']}; dotted 1.02, dashed 1.10)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


