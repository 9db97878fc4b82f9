"""Results of a run: `Row` (one case), `Report` (all of them) and their outputs — the summary
table, JSON (every row with its errors and timings), JUnit XML (what CI systems read) and the
timing comparison with an earlier JSON (``--baseline``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import time
import xml.etree.ElementTree as ET

from ._references import Comparison

PASS, FAIL, ERROR = "pass", "fail", "error"
# Reference columns, in table order.
REFERENCES = ("jax", "fd", "analytic")
_REFERENCE_TITLES = {"jax": "plain JAX", "fd": "finite diff.", "analytic": "analytic",
                     "jax@old": "plain JAX (old world)"}


@dataclasses.dataclass
class Row:
    """The outcome of one case."""

    name: str
    operator: str
    kind: str  # "scenario" or "world"
    status: str = PASS  # "pass", "fail" (a check failed) or "error" (the case raised)
    message: str = ""  # why it failed, or a note (e.g. the expected error it raised)
    comparisons: dict[str, Comparison] = dataclasses.field(default_factory=dict)
    not_applicable: dict[str, str] = dataclasses.field(default_factory=dict)  # reference -> why
    time: float = 0.0  # seconds, the whole case (compilation included)
    prepare_time: float = 0.0  # seconds, the first (preparing) call
    eval_time: float = 0.0  # seconds, the second call at `args` (steady state)
    retraces: int | None = None  # world cases: traces of the operator after the change
    tags: tuple[str, ...] = ()
    description: str = ""
    slower: float | None = None  # set by a baseline comparison: time / baseline time
    # Stability checks (issue #15): check name -> "ok" or what went wrong.
    stability: dict[str, str] = dataclasses.field(default_factory=dict)
    steady_traces: int | None = None  # JAX + jaxworld traces during the steady-state calls
    steady_compiles: int | None = None  # XLA compilations during the steady-state calls

    @property
    def ok(self) -> bool:
        return self.status == PASS

    def error_summary(self, reference: str) -> str:
        c = self.comparisons.get(reference)
        if c is None:
            return "n/a" if reference in self.not_applicable or reference != "analytic" else "-"
        if c.note:
            return "mismatch"
        return f"{c.max_abs:.1e}" + ("" if c.ok else " !")

    def as_dict(self) -> dict:
        return {
            "name": self.name, "operator": self.operator, "kind": self.kind,
            "status": self.status, "message": self.message,
            "errors": {k: _finite(c.as_dict()) for k, c in self.comparisons.items()},
            "not_applicable": dict(self.not_applicable),
            "time": self.time, "prepare_time": self.prepare_time, "eval_time": self.eval_time,
            "retraces": self.retraces, "tags": list(self.tags),
            "description": self.description, "slower": self.slower,
            "stability": dict(self.stability), "steady_traces": self.steady_traces,
            "steady_compiles": self.steady_compiles,
        }

    def steady_summary(self) -> str:
        if self.steady_traces is None:
            return "-"
        return f"{self.steady_traces}/{self.steady_compiles}" + (
            "" if self.stability.get("steady", "ok") == "ok" else " !")


def _finite(d: dict) -> dict:
    # JSON has no Infinity: write non-finite errors as strings.
    return {k: (repr(v) if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in d.items()}


@dataclasses.dataclass
class Report:
    """All rows of a `check` run.

    Attributes:
      rows: one `Row` per case, in run order.
      ok: True when every case passed.
      failures: the rows that failed or raised.
    """

    rows: list[Row]
    suite: str = ""
    time: float = 0.0

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def failures(self) -> list[Row]:
        return [r for r in self.rows if not r.ok]

    def __getitem__(self, name: str) -> Row:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"jaxworld.testing.Report: no case named {name!r}.")

    def raise_for_failures(self) -> None:
        """Raise AssertionError describing every failed case (used by the pytest helpers)."""
        if self.failures:
            raise AssertionError("\n".join(f"{r.name} [{r.operator}] {r.status}: {r.message}"
                                           for r in self.failures))

    # -- text ---------------------------------------------------------------------------------
    def summary(self) -> str:
        n_fail = sum(r.status == FAIL for r in self.rows)
        n_err = sum(r.status == ERROR for r in self.rows)
        n_pass = len(self.rows) - n_fail - n_err
        slow = sum(r.slower is not None for r in self.rows)
        text = f"{n_pass} passed, {n_fail} failed, {n_err} errors in {self.time:.1f}s"
        return text + (f"; {slow} slower than the baseline" if slow else "")

    def table(self) -> str:
        """A fixed-width table: status, name, operator, max abs error per reference, time."""
        headers = ["status", "case", "operator", "plain JAX", "finite diff.", "analytic",
                   "steady tr/co", "time"]
        lines = []
        for r in self.rows:
            time_text = f"{r.time:.2f}s" + (f" (x{r.slower:.1f})" if r.slower else "")
            lines.append([r.status.upper(), _fit(r.name, 76), r.operator, *(r.error_summary(ref)
                          for ref in REFERENCES), r.steady_summary(), time_text])
        widths = [max(len(str(x)) for x in col) for col in zip(headers, *lines, strict=True)]
        widths[1] = min(widths[1], 76)

        def fmt(cells):
            padded = (str(c)[:w].ljust(w) for c, w in zip(cells, widths, strict=True))
            return "  ".join(padded).rstrip()

        out = [fmt(headers), fmt(["-" * w for w in widths])]
        out += [fmt(cells) for cells in lines]
        failures = self.failures
        if failures:
            out.append("")
            out.append("Failures:")
            for r in failures:
                out.append(f"  {r.name} [{r.operator}] {r.status}: {r.message}")
        out.append("")
        out.append(self.summary())
        return "\n".join(out)

    # -- Markdown (CI step summaries) ----------------------------------------------------------
    def markdown(self, title: str = "jaxworld check") -> str:
        """A Markdown summary: counts, the failing cases with their messages, then every case in
        a collapsed table (for ``$GITHUB_STEP_SUMMARY`` and similar)."""
        ok = "passed" if self.ok else "FAILED"
        suite = f" (suite `{self.suite}`)" if self.suite else ""
        out = [f"## {title}{suite}: {ok}", "", self.summary(), ""]
        kinds: dict[str, list[int]] = {}
        for r in self.rows:
            counts = kinds.setdefault(r.kind, [0, 0, 0])
            counts[0 if r.status == PASS else 1 if r.status == FAIL else 2] += 1
        out += ["| kind | passed | failed | errors |", "|---|---|---|---|"]
        out += [f"| {kind} | {c[0]} | {c[1]} | {c[2]} |" for kind, c in kinds.items()]
        if self.failures:
            out += ["", "### Failures", "", "| case | operator | status | why |",
                    "|---|---|---|---|"]
            out += [f"| {_md(r.name)} | {r.operator} | {r.status} | "
                    f"{_md(r.message.splitlines()[0] if r.message else '')} |"
                    for r in self.failures]
        out += ["", "<details><summary>All cases</summary>", "",
                "| status | case | operator | plain JAX | finite diff. | analytic | steady "
                "traces/compiles | time |", "|---|---|---|---|---|---|---|---|"]
        out += [f"| {r.status} | {_md(r.name)} | {r.operator} | "
                + " | ".join(r.error_summary(ref) for ref in REFERENCES)
                + f" | {r.steady_summary()} | {r.time:.2f}s |" for r in self.rows]
        out += ["", "</details>", ""]
        return "\n".join(out)

    def write_markdown(self, path: str, extra: str = "") -> None:
        with open(path, "w") as fh:
            fh.write(self.markdown())
            if extra:
                fh.write("\n" + extra)

    # -- JSON ---------------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {
            "format": "jaxworld-check/1", "suite": self.suite, "ok": self.ok,
            "time": self.time, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "python": platform.python_version(), "jax": _jax_version(),
            "rows": [r.as_dict() for r in self.rows],
        }

    def write_json(self, path: str) -> None:
        with open(path, "w") as fh:
            json.dump(self.to_json(), fh, indent=1)
            fh.write("\n")

    # -- JUnit XML ----------------------------------------------------------------------------
    def to_junit(self) -> ET.ElementTree:
        suite_name = f"jaxworld check {self.suite}".strip()
        root = ET.Element("testsuites", name=suite_name, tests=str(len(self.rows)),
                          failures=str(sum(r.status == FAIL for r in self.rows)),
                          errors=str(sum(r.status == ERROR for r in self.rows)),
                          time=f"{self.time:.3f}")
        suite = ET.SubElement(root, "testsuite", name=suite_name, tests=str(len(self.rows)),
                              failures=root.get("failures"), errors=root.get("errors"),
                              skipped="0", time=f"{self.time:.3f}",
                              timestamp=time.strftime("%Y-%m-%dT%H:%M:%S"))
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="jax", value=_jax_version())
        for r in self.rows:
            case = ET.SubElement(suite, "testcase", classname=f"jaxworld.check.{r.kind}",
                                 name=f"{r.name} [{r.operator}]", time=f"{r.time:.3f}")
            details = "\n".join(
                f"{_REFERENCE_TITLES.get(k, k)}: {c.short()} (rtol {c.rtol:.1e}, atol "
                f"{c.atol:.1e}){' FAIL' if not c.ok else ''}{' ' + c.note if c.note else ''}"
                for k, c in r.comparisons.items())
            if r.status == FAIL:
                ET.SubElement(case, "failure", message=r.message[:500],
                              type="AssertionError").text = f"{r.message}\n{details}"
            elif r.status == ERROR:
                ET.SubElement(case, "error", message=r.message.splitlines()[0][:500] if r.message
                              else "error", type="Exception").text = r.message
            out = [details] + ([r.message] if r.ok and r.message else [])
            ET.SubElement(case, "system-out").text = "\n".join(x for x in out if x)
        ET.indent(root)
        return ET.ElementTree(root)

    def write_junit(self, path: str) -> None:
        self.to_junit().write(path, encoding="utf-8", xml_declaration=True)

    # -- baseline -----------------------------------------------------------------------------
    def compare_baseline(self, baseline: dict, tolerance: float = 2.0,
                         min_seconds: float = 0.05) -> list[Row]:
        """Mark rows slower than `tolerance` times their time in `baseline` (a `to_json()`).

        Cases that now take `min_seconds` or less are not flagged (timer noise). Returns the
        flagged rows; each gets ``row.slower = time / baseline time``.
        """
        if not isinstance(baseline, dict) or not isinstance(baseline.get("rows"), list):
            raise ValueError(
                "jaxworld check --baseline: the file is not a `jaxworld check --json` report "
                "(expected an object with a 'rows' list).")
        before = {r.get("name"): r.get("time") for r in baseline["rows"] if isinstance(r, dict)}
        flagged = []
        for r in self.rows:
            old = before.get(r.name)
            if not isinstance(old, (int, float)) or old <= 0:
                continue
            if r.time > tolerance * old and r.time > min_seconds:
                r.slower = r.time / old
                flagged.append(r)
        return flagged


def _fit(text: str, width: int) -> str:
    """`text` in `width` characters, keeping its head and its tail (a mutant's name ends with
    the dependency it changed)."""
    if len(text) <= width:
        return text
    head = width // 3
    return text[:head] + "..." + text[len(text) - (width - head - 3):]


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _jax_version() -> str:
    import jax
    return jax.__version__

