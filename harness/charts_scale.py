"""The scaling-efficiency chart: images/s over replicas x single-replica images/s, by
replica count, one line per cell (factors other than ``strategy``) and run or host.

Reads ``scaling_efficiency`` and ``replicas`` from configs.csv (harness/scaling.py
writes them when a cell's single-replica ``strategy none`` cell ran in the same run);
1.0 is perfect linear scaling. No TensorFlow.
"""

from __future__ import annotations

import pandas as pd

from harness.chartkit import Chart, axes_style, chart_title, fmt_number, new_figure, palette
from harness.records import number, text
from harness.runset import RunSet


def scaling_chart(rs: RunSet) -> Chart:
    name = "scaling_efficiency"
    cfg = rs.configs
    if "scaling_efficiency" not in cfg.columns:
        return Chart(name, "scaling efficiency", reason="configs.csv has no scaling_efficiency")
    rows = pd.DataFrame({
        "run": cfg["run"].map(text), "strategy": cfg["strategy"].map(text),
        "status": cfg["status"].map(text),
        "replicas": cfg["replicas"].map(number), "eff": cfg["scaling_efficiency"].map(number),
        "group": [f"{text(r['model'])} {text(r['mode'])} {text(r['base'])} "
                  f"bs{text(r['batch_size'])} {text(r['device'])}".replace("  ", " ")
                  for r in cfg.to_dict("records")],
    })
    ok = rows[(rows["status"] == "ok") & rows["eff"].notna() & rows["replicas"].notna()]
    if not (ok["strategy"] != "none").any():
        return Chart(name, "scaling efficiency",
                     reason="no strategy cell with a single-replica (strategy none) cell of "
                            "the same run to scale against")
    with axes_style():
        fig = new_figure(7.5, 4.2)
        ax = fig.add_subplot(1, 1, 1)
        # one line per strategy, from the shared single-replica (none) point
        keys = [(run, group, st) for (run, group, st), _ in
                ok[ok["strategy"] != "none"].groupby(["run", "group", "strategy"], sort=True)]
        colours = palette("run", [" · ".join(k) for k in keys])
        for run, group, st in keys:
            frame = ok[(ok["run"] == run) & (ok["group"] == group)
                       & ok["strategy"].isin(("none", st))].sort_values("replicas")
            label = " · ".join([group, st, *([run] if rs.several else [])])
            ax.plot(frame["replicas"], frame["eff"], marker="o",
                    color=colours[" · ".join((run, group, st))], label=label)
            for _, r in frame[frame["strategy"] == st].iterrows():
                ax.annotate(fmt_number(r["eff"]), (r["replicas"], r["eff"]),
                            textcoords="offset points", xytext=(4, 4), fontsize=7.5)
        ax.axhline(1.0, color="0.5", linestyle=":", linewidth=1)
        ax.set_xlabel("replicas (global batch = batch size x replicas)")
        ax.set_ylabel("scaling efficiency")
        ax.set_xticks(sorted(ok["replicas"].unique()))
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7.5, loc="lower left")
        title = chart_title(fig, "Scaling efficiency: images/s / (replicas x single-replica "
                                 "images/s)", rs)
    return Chart(name, title, fig)
