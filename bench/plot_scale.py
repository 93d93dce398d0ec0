"""Draw bench/scale's figures into one PNG.

    plot_scale.py SCALE_TSV OUT_PNG

SCALE_TSV holds the name<TAB>value lines bench/scale printed.  Panels for
the parts it holds: archive throughput against partitions beside its two
baselines (rdkafka_performance and kcat), the worker's peak RSS against
partitions with the 64 MB + batch bytes limit, and refresh_gold() and
load_bronze() times with the small and the large history.
"""
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    figures = {}
    with open(path) as f:
        for line in f:
            name, _, value = line.rstrip("\n").partition("\t")
            try:
                figures[name] = float(value)
            except ValueError:
                pass
    return figures


def grid(figures, prefix):
    """{symbols: [(partitions, value)]} of the names PREFIX_<p>p_<s>s."""
    lines = {}
    for name, value in figures.items():
        m = re.fullmatch(re.escape(prefix) + r"_(\d+)p_(\d+)s", name)
        if m:
            lines.setdefault(int(m.group(2)), []).append((int(m.group(1)), value))
    return {s: sorted(points) for s, points in sorted(lines.items())}


def sizes(figures, prefix):
    """[(rows, value)] of the names PREFIX_<rows>."""
    out = []
    for name, value in figures.items():
        m = re.fullmatch(re.escape(prefix) + r"_(\d+)", name)
        if m:
            out.append((int(m.group(1)), value))
    return sorted(out)


def partition_ticks(ax, points):
    ax.set_xticks([p for p, _ in points])
    ax.set_xticklabels([str(p) for p, _ in points])
    ax.minorticks_off()


def archive_panels(figures, ax_rate, ax_rss):
    archive = grid(figures, "archive_msgs_per_s")
    most = max(archive)  # the most symbols: every partition gets messages
    for prefix, label, style in (("archive_msgs_per_s", "archive worker", "o-"),
                                 ("rdkafka_perf_msgs_per_s", "rdkafka_performance -C", "s--"),
                                 ("kcat_msgs_per_s", "kcat -C", "x:")):
        points = grid(figures, prefix).get(most, [])
        ax_rate.plot([p for p, _ in points], [v / 1000 for _, v in points], style, label=label)
    for s, points in archive.items():
        if s != most:
            ax_rate.plot([p for p, _ in points], [v / 1000 for _, v in points], ".-", alpha=0.4,
                         label=f"archive worker, {s:,} symbols")
    ax_rate.set(xscale="log", xlabel="topic partitions", ylabel="thousand messages / s",
                title=f"Reading the topic to the end ({most:,} symbols)")
    partition_ticks(ax_rate, archive[most])
    ax_rate.set_ylim(bottom=0)
    ax_rate.legend(fontsize=7)
    for s, points in grid(figures, "worker_peak_rss_mb").items():
        ax_rss.plot([p for p, _ in points], [v for _, v in points], "o-", label=f"{s:,} symbols")
    if "worker_rss_limit_mb" in figures:
        ax_rss.axhline(figures["worker_rss_limit_mb"], color="red", linestyle="--",
                       label="target: 64 MB + batch bytes")
    ax_rss.set(xscale="log", xlabel="topic partitions", ylabel="MB", title="Archive worker peak private RSS")
    partition_ticks(ax_rss, archive[most])
    ax_rss.set_ylim(bottom=0)
    ax_rss.legend(fontsize=7)


def size_ticks(ax, points):
    ax.set_xticks([r / 1e6 for r, _ in points])
    ax.set_xticklabels([f"{r / 1e6:g}" for r, _ in points])
    ax.minorticks_off()


def sql_panels(figures, ax_gold, ax_load):
    for prefix, label, style in (("gold_refresh_ms_0.2.0", "0.2.0 (released)", "s--"),
                                 ("gold_refresh_ms", "0.3.0", "o-")):
        points = sizes(figures, prefix)
        if points:
            ax_gold.plot([r / 1e6 for r, _ in points], [v for _, v in points], style, label=label)
    ax_gold.set(xscale="log", yscale="log", xlabel="million silver rows of history", ylabel="ms (log scale)",
                title="refresh_gold() after one more minute")
    size_ticks(ax_gold, sizes(figures, "gold_refresh_ms"))
    ax_gold.legend(fontsize=7)
    for prefix, label in (("load_noop_ms", "load_bronze()"), ("load_noop_pipeline_ms", "load_bronze(pipeline)")):
        points = sizes(figures, prefix)
        if points:
            ax_load.plot([r / 1e6 for r, _ in points], [v for _, v in points], "o-", label=label)
    ax_load.set(xscale="log", xlabel="million manifest rows", ylabel="ms",
                title="load_bronze() with nothing to load")
    size_ticks(ax_load, sizes(figures, "load_noop_ms"))
    ax_load.set_ylim(bottom=0)
    ax_load.legend(fontsize=7)


def main(tsv, png):
    figures = read(tsv)
    has_archive = any(k.startswith("archive_msgs_per_s_") for k in figures)
    has_sql = any(k.startswith("gold_refresh_ms_") for k in figures)
    rows = int(has_archive) + int(has_sql)
    if rows == 0:
        print(f"plot_scale: no figures in {tsv}", file=sys.stderr)
        return 1
    fig, axes = plt.subplots(rows, 2, figsize=(11, 4 * rows), squeeze=False)
    row = 0
    if has_archive:
        archive_panels(figures, *axes[row])
        row += 1
    if has_sql:
        sql_panels(figures, *axes[row])
    fig.suptitle("bench/scale: costs as the work grows (medians of rounds)")
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
