"""Markdown tables from the raw steps.

Cells are medians over runs. The ratio in parentheses is the slowdown relative
to local ext4 for the same step in the same invocation: target time / ext4 time,
or for rates (MB/s, IOPS) ext4 rate / target rate, so 1.0x is ext4 speed and
higher is slower either way. cohfs cells also show the slowdown relative to
passthrough_ll (the FUSE floor) when it ran, and the CPU table the cohfs clients'
round trips and FUSE requests (per tarball entry for the untar).

The twoclient steps get a table of their own: each row compares two clients with
one (ext4: two processes on one mount), and shows cohfs's round trips and
recalls summed over both mounts.
"""
import json
import statistics

from .workloads import STEP_LABELS, TWO_CLIENT_STEPS

RATE_STEPS = {"fio-seqwrite": "MB/s", "fio-seqread": "MB/s", "fio-randread": "IOPS"}


def _median(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


class Table:
    def __init__(self, steps):
        # (rtt, target, step) -> [Step]
        self.by = {}
        for s in steps:
            self.by.setdefault((s.rtt_ms, s.target, s.step), []).append(s)

    def get(self, rtt, target, step):
        # local targets (no network) were measured once, with rtt_ms None
        return self.by.get((rtt, target, step)) or self.by.get((None, target, step)) or []

    def value(self, rtt, target, step):
        """(median wall or rate, any failure) for a cell."""
        rows = self.get(rtt, target, step)
        if not rows:
            return None, False
        failed = any(r.failed() for r in rows)
        if step in RATE_STEPS:
            return _median([r.metric for r in rows]), failed
        return _median([r.wall for r in rows]), failed

    def median(self, rtt, target, step, field):
        return _median([getattr(r, field) for r in self.get(rtt, target, step)])

    def median_extra(self, rtt, target, step, key):
        return _median([r.extra.get(key) for r in self.get(rtt, target, step)])

    def errors(self, rtt, target, step):
        return [(r.run, r.extra.get("error") or f"exit {r.rc}")
                for r in self.get(rtt, target, step) if r.failed()]


def fmt_num(v):
    if v is None:
        return "–"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def is_cohfs(target):
    return target.startswith("cohfs")


def render(steps, targets, rtts, step_order, notes, tar_entries=None):
    tab = Table(steps)
    out = []
    present = [s for s in step_order if any(x.step == s for x in steps)
               and s not in TWO_CLIENT_STEPS]
    any_fail = False
    for rtt in rtts:
        cols = [t for t in targets if any(tab.get(rtt, t, s) for s in present)]
        two = render_twoclient(tab, rtt, targets)
        if two and not cols:
            out.append(f"### Added round-trip time: {rtt:g} ms" if rtt else
                       "### Loopback (no added latency)")
            out += ["", *two]
        if not cols:
            continue
        out.append(f"### Added round-trip time: {rtt:g} ms" if rtt else
                   "### Loopback (no added latency)")
        out.append("")
        local = [t for t in cols if t in ("ext4", "bindfs", "passthrough_ll")]
        out.append("Median wall seconds (fio rows: MB/s or IOPS); in parentheses the "
                   "slowdown vs local ext4."
                   + (f" {' and '.join(local)} have no network: their columns repeat the "
                      "loopback numbers." if rtt and local else ""))
        out.append("")
        out.append("| step | " + " | ".join(cols) + " |")
        out.append("|---|" + "---:|" * len(cols))
        for step in present:
            base, _ = tab.value(rtt, "ext4", step)
            floor, _ = tab.value(rtt, "passthrough_ll", step)
            cells = []
            for t in cols:
                v, failed = tab.value(rtt, t, step)
                if v is None:
                    cells.append("–")
                    continue
                unit = f" {RATE_STEPS[step]}" if step in RATE_STEPS else ""
                cell = fmt_num(v) + unit
                ratios = [f"{slowdown(step, v, base):.1f}x"] if base and t != "ext4" and v else []
                if floor and is_cohfs(t) and v:
                    ratios.append(f"{slowdown(step, v, floor):.1f}x ll")
                if ratios:
                    cell += f" ({'; '.join(ratios)})"
                if failed:
                    cell += " !"
                    any_fail = True
                cells.append(cell)
            out.append(f"| {STEP_LABELS.get(step, step)} | " + " | ".join(cells) + " |")
        out.append("")
        out.append("CPU seconds, median: client command user+sys / file system processes "
                   "(servers, FUSE daemons, sshd; ext4's work is in the kernel and not attributed)"
                   + ("; cohfs server round trips and FUSE requests (untar: per entry)."
                      if any(is_cohfs(t) for t in cols) else "."))
        out.append("")
        counted = [t for t in cols if is_cohfs(t)]
        hdr = cols + [f"{t} {what}" for t in counted for what in ("round trips", "FUSE requests")]
        out.append("| step | " + " | ".join(hdr) + " |")
        out.append("|---|" + "---:|" * len(hdr))
        for step in present:
            cells = []
            for t in cols:
                u = tab.median(rtt, t, step, "user")
                s = tab.median(rtt, t, step, "sys")
                f = tab.median(rtt, t, step, "fs_cpu")
                if u is None:
                    cells.append("–")
                    continue
                cells.append(f"{u + s:.2f} / {fmt_num(f) if f is not None else '–'}")
            for t in counted:
                r, f = tab.median(rtt, t, step, "rpc"), tab.median(rtt, t, step, "fuse")
                cells.append(f"{r:.0f}" if r is not None else "–")
                per = f" ({f / tar_entries:.2f}/entry)" if step == "untar" and tar_entries else ""
                cells.append(f"{f:.0f}{per}" if f is not None else "–")
            out.append(f"| {STEP_LABELS.get(step, step)} | " + " | ".join(cells) + " |")
        out.append("")
        out += two
    if any_fail:
        out.append("`!`: the command exited non-zero in at least one run (see the log lines "
                   "in the raw results); the time is still shown.")
        out.append("")
    for n in notes:
        out.append(f"- {n}")
    return "\n".join(out)


def slowdown(step, v, base):
    """How many times slower v is than base (rates: base / v)."""
    return base / v if step in RATE_STEPS else v / base


def render_twoclient(tab, rtt, targets):
    """The twoclient table for one round-trip time, with its failures; [] if none."""
    cols = [t for t in targets if any(tab.get(rtt, t, s) for s in TWO_CLIENT_STEPS)]
    if not cols:
        return []
    cohfs = "cohfs" in cols
    out = ["Two clients of one server (`twoclient`; ext4: two processes on the one mount), "
           "medians" + ("; cohfs round trips and recalls summed over both mounts, for the "
                        "two-client step / the one-client step." if cohfs else "."), ""]
    hdr = cols + (["cohfs round trips", "cohfs recalls"] if cohfs else [])
    out.append("| step | " + " | ".join(hdr) + " |")
    out.append("|---|" + "---:|" * len(hdr))

    def pair(t, two, one, field, fmt):
        a, b = tab.median(rtt, t, two, field), tab.median(rtt, t, one, field)
        if a is None and b is None:
            return "–"
        return " / ".join(fmt(v) if v is not None else "–" for v in (a, b))

    def count(v):
        return f"{v:.0f}" if v is not None else "–"

    def create(t):
        cell = pair(t, "tc-create-2", "tc-create-1", "metric", lambda v: f"{v:.0f}")
        two, one = (tab.median(rtt, t, s, "metric") for s in ("tc-create-2", "tc-create-1"))
        return cell + (f" files/s ({two / one:.2f}x)" if two and one else "")

    def untar(t):
        cell = pair(t, "tc-untar-2", "tc-untar-1", "wall", fmt_num)
        two, one = (tab.median(rtt, t, s, "wall") for s in ("tc-untar-2", "tc-untar-1"))
        lists = tab.median_extra(rtt, t, "tc-untar-2", "listings")
        errs = sum(r.extra.get("list_errors", 0) for r in tab.get(rtt, t, "tc-untar-2"))
        return (cell + (f" s ({two / one:.2f}x)" if two and one else "")
                + (f"; {lists:.0f} listings, {errs} failed" if lists is not None else ""))

    def stat(t):
        p50, p99, misses = (tab.median_extra(rtt, t, "tc-stat-other", k)
                            for k in ("pair_p50_us", "pair_p99_us", "misses"))
        if p50 is None:
            return "–"
        return f"{p50:.0f} / {p99:.0f} µs, {misses:.0f} misses"

    rows = [("create, 2 clients, one dir: files/s, N each / 2N alone", create,
             ("tc-create-2", "tc-create-1")),
            ("untar while the other lists: A's s / A alone", untar, ("tc-untar-2", "tc-untar-1")),
            ("stat after create, other client: median / p99 of the pair", stat,
             ("tc-stat-other",))]
    errors = []
    for label, cell, steps in rows:
        if not any(tab.get(rtt, t, s) for t in cols for s in steps):
            continue
        cells = []
        for t in cols:
            errs = [(run, s, e) for s in steps for run, e in tab.errors(rtt, t, s)]
            errors += [f"{t}, {STEP_LABELS[s]}, run {run}: {e}" for run, s, e in errs]
            cells.append(cell(t) + (" !" if errs else ""))
        if cohfs:
            for field in ("rpc", "recalls"):
                vals = [count(tab.median(rtt, "cohfs", s, field)) for s in steps]
                cells.append(" / ".join(vals) if any(v != "–" for v in vals) else "–")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    out.append("")
    if errors:
        out += ["`!` failed:"] + [f"- {e}" for e in errors] + [""]
    return out


def raw_tsv(steps):
    from .workloads import Step
    lines = ["\t".join(Step.FIELDS)]
    for s in steps:
        lines.append("\t".join("" if v is None or v == {} else
                               json.dumps(v, separators=(",", ":")) if isinstance(v, dict)
                               else str(v) for v in s.as_dict().values()))
    return "\n".join(lines)
