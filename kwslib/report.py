"""The evaluation report: plotly figures and one self-contained HTML file, rendered only from metrics.json.

Nothing here recomputes a metric: every number shown is read from metrics.json (schema `kws.metrics/2`), so the
report, the app's Results tab and notebook 03 always agree. The HTML embeds plotly.js once and each mistake's audio
as a data: URI, so it opens offline from a file or an e-mail attachment. Sections a metrics.json has no data for
(a training-only run has no conditions, speakers or calibration) show a one-line note instead.
"""

from __future__ import annotations

import base64
import html
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from statistics import NormalDist
from typing import TYPE_CHECKING

from kwslib.evaluation import load_metrics, validate_metrics

if TYPE_CHECKING:
    import plotly.graph_objects as go

FIGURE_HEIGHT = 420
MAX_MISTAKES = 50  # rows of the mistakes table; each row embeds its WAV (~43 kB of base64 for a 1 s clip)
MAX_AUDIO_BYTES = 2_000_000  # a mistake is a short clip; a far larger file is not one and is not embedded
WORST_SPEAKERS = 5
DET_RANGE = (0.001, 0.6)  # error rates shown on the DET axes; rates outside are drawn at the edge
DET_TICKS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4)
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
PLOT_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["select2d", "lasso2d"]}
EVALUATE_HINT = "run <code>kws evaluate</code> on the model."

# (id, heading) of every section, in page order; the comparison page has all but the mistakes.
SECTIONS = (
    ("summary", "Summary"),
    ("per-keyword", "Per keyword"),
    ("confusion", "Confusion matrix"),
    ("noise", "Noise"),
    ("devices", "Devices"),
    ("speakers", "Speakers"),
    ("det", "DET curves"),
    ("calibration", "Calibration"),
    ("mistakes", "Worst mistakes"),
    ("streaming", "Streaming"),
    ("context", "Context"),
)

_SNR_IN_NAME = re.compile(r"@\s*([+-]?\d+(?:\.\d+)?)\s*dB", re.IGNORECASE)
_LEVEL_IN_NAME = re.compile(r"([+-]?\d+(?:\.\d+)?)\s*dB", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------
# Public API


def figures(metrics: dict) -> dict[str, go.Figure]:
    """One run's figures by name (per_keyword, confusion, snr, devices, speakers, det, calibration, stream),
    only those the metrics.json has data for."""
    return _figures(validate_metrics(metrics))


def compare_figures(runs: list[dict], names: list[str]) -> dict[str, go.Figure]:
    """The same views with runs side by side (grouped bars, one line per run), only those with data."""
    runs, names = list(runs), [str(n) for n in names]
    if len(runs) != len(names):
        raise ValueError(f"compare_figures got {len(runs)} runs but {len(names)} names; pass one name per run")
    return _compare_figures([validate_metrics(run, name=name) for run, name in zip(runs, names)], names)


def render_report(
    metrics: dict | list[dict],
    out: str | os.PathLike,
    *,
    base_dirs: list[str | os.PathLike] | None = None,
    names: list[str] | None = None,
    title: str | None = None,
) -> Path:
    """Write one self-contained HTML report: a full report for one run, a comparison for two or more.

    `base_dirs` are the folders each run's relative mistake audio paths start from (default: the current folder).
    The file is written atomically (a temp file renamed into place); returns its path.
    """
    runs = [metrics] if isinstance(metrics, dict) else list(metrics)
    if not runs:
        raise ValueError("render_report needs at least one metrics dict")
    if names is not None and len(names) != len(runs):
        raise ValueError(f"render_report got {len(runs)} runs but {len(names)} names; pass one name per run")
    if base_dirs is not None and len(base_dirs) != len(runs):
        raise ValueError(f"render_report got {len(runs)} runs but {len(base_dirs)} base_dirs; pass one per run")
    names = _unique_names([str(n) for n in names] if names else [_default_name(run, i) for i, run in enumerate(runs)])
    for run, name in zip(runs, names):
        validate_metrics(run, name=name)
    dirs = [Path(d) for d in base_dirs] if base_dirs else [Path.cwd()] * len(runs)
    if len(runs) == 1:
        page = _single_page(runs[0], dirs[0], title or f"kws report: {names[0]}")
    else:
        page = _compare_page(runs, names, title or f"kws comparison: {' vs '.join(names)}")
    return _write_atomic(Path(out), page)


def render_report_files(metrics_paths: list[str | os.PathLike], out: str | os.PathLike) -> Path:
    """`kws report a.json [b.json ...] --out report.html`: load and validate each file, its folder holds its audio."""
    files = [Path(p) for p in metrics_paths]
    if not files:
        raise ValueError("render_report_files needs at least one metrics.json path")
    files = [f / "metrics.json" if f.is_dir() else f for f in files]
    runs = [load_metrics(f) for f in files]
    names = [f.stem if f.stem != "metrics" else (f.resolve().parent.name or f.stem) for f in files]
    return render_report(runs, out, base_dirs=[f.resolve().parent for f in files], names=names)


# ---------------------------------------------------------------------------------------------
# Reading metrics.json (tolerant: anything optional may be missing)


def _split(metrics: dict) -> tuple[str | None, dict]:
    """The split the report describes: the evaluated one, else test, else validation."""
    evaluation = metrics.get("evaluation") or {}
    context = metrics.get("context") or {}
    for name in (evaluation.get("split"), context.get("split"), "test", "validation"):
        data = metrics.get(name) if name else None
        if isinstance(data, dict) and "accuracy" in data:
            return name, data
    return None, {}


def _conditions(metrics: dict, kind: str | None = None) -> list[dict]:
    conditions = (metrics.get("evaluation") or {}).get("conditions") or []
    return [c for c in conditions if kind is None or c.get("kind") == kind]


def _clean(metrics: dict) -> dict | None:
    return next(iter(_conditions(metrics, "clean")), None)


def _noise_series(metrics: dict) -> dict[str, list[tuple[float, dict]]]:
    """Noise conditions by noise type, each sorted by SNR."""
    series: dict[str, list[tuple[float, dict]]] = {}
    for cond in _conditions(metrics, "noise"):
        noise = cond.get("noise") or cond["name"].split("@")[0]
        snr = cond.get("snr_db")
        if snr is None and (match := _SNR_IN_NAME.search(cond["name"])):
            snr = float(match.group(1))
        if snr is not None:
            series.setdefault(noise, []).append((float(snr), cond))
    return {noise: sorted(points, key=lambda p: p[0]) for noise, points in series.items()}


def _device_bars(metrics: dict) -> tuple[list[tuple[str, dict]], list[tuple[str, dict]]]:
    """(device name, condition) and (level name, condition) pairs, levels sorted by dB."""
    devices = [(c.get("device") or c["name"].split(":", 1)[-1], c) for c in _conditions(metrics, "device")]
    levels = []
    for cond in _conditions(metrics, "level"):
        db = cond.get("level_db")
        if db is None and (match := _LEVEL_IN_NAME.search(cond["name"])):
            db = float(match.group(1))
        levels.append((db if db is not None else math.inf, f"{db:+g} dB" if db is not None else cond["name"], cond))
    return devices, [(name, cond) for _, name, cond in sorted(levels, key=lambda x: x[0])]


def _babble_0db(metrics: dict) -> dict | None:
    for snr, cond in _noise_series(metrics).get("babble", []):
        if snr == 0:
            return cond
    return None


def _worst_device(metrics: dict) -> tuple[str, dict] | None:
    devices, _ = _device_bars(metrics)
    return min(devices, key=lambda d: d[1]["accuracy"]) if devices else None


def _per_label(metrics: dict) -> list[tuple[str, dict]]:
    per = _split(metrics)[1].get("per_label") or {}
    order = [label for label in metrics["labels"] if label in per] + [k for k in per if k not in metrics["labels"]]
    return [(label, per[label]) for label in order]


def _confusion(metrics: dict) -> list[list[int]] | None:
    matrix = _split(metrics)[1].get("confusion_matrix")
    n = len(metrics["labels"])
    if not matrix or len(matrix) != n or any(len(row) != n for row in matrix):
        return None
    return matrix


def _speakers(metrics: dict) -> list[tuple[str, dict]]:
    """(speaker, {clips, accuracy}), worst first."""
    per = _split(metrics)[1].get("per_speaker") or {}
    return sorted(per.items(), key=lambda kv: (kv[1]["accuracy"], -kv[1]["clips"], kv[0]))


def _det(metrics: dict) -> list[tuple[str, dict]]:
    det = _split(metrics)[1].get("det") or {}
    order = [label for label in metrics["labels"] if label in det] + [k for k in det if k not in metrics["labels"]]
    return [(k, det[k]) for k in order if det[k]["fpr"] and len(det[k]["fpr"]) == len(det[k]["fnr"])]


def _calibration(metrics: dict) -> tuple[float, list[dict]] | None:
    cal = _split(metrics)[1].get("calibration")
    if not cal:
        return None
    bins = [b for b in cal["bins"] if b["count"] and b["accuracy"] is not None and b["confidence"] is not None]
    return cal["ece"], bins


def _is_num(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _stream(metrics: dict) -> tuple[dict, list[dict]] | None:
    """(default operating point, sweep points) of the optional `stream` section, or None; unknown shapes are ignored."""
    stream = metrics.get("stream")
    if not isinstance(stream, dict):
        return None
    default = stream.get("default") if isinstance(stream.get("default"), dict) else {}
    sweep = stream.get("sweep") if isinstance(stream.get("sweep"), list) else []
    points = [
        p
        for p in sweep
        if isinstance(p, dict) and _is_num(p.get("miss_rate")) and _is_num(p.get("false_accepts_per_hour"))
    ]
    points.sort(key=lambda p: (p["false_accepts_per_hour"], -p["miss_rate"]))
    scalars = {k: v for k, v in default.items() if _is_num(v) or isinstance(v, str)}
    if not scalars and not points:
        return None
    return scalars, points


def _default_name(run: dict, index: int) -> str:
    context = run.get("context") or {}
    return str(context.get("model_name") or run.get("model") or context.get("model") or f"run {index + 1}")


def _unique_names(names: list[str]) -> list[str]:
    if len(set(names)) == len(names):
        return names
    return [f"{name} ({i + 1})" for i, name in enumerate(names)]


# ---------------------------------------------------------------------------------------------
# Figures of one run


def _style(fig: go.Figure, title: str, *, height: int = FIGURE_HEIGHT, **layout) -> go.Figure:
    base = {
        "template": "plotly_white",
        "title": {"text": title, "x": 0.0, "xanchor": "left", "font": {"size": 16}},
        "height": height,
        "margin": {"l": 64, "r": 24, "t": 72, "b": 56},
        "font": {"family": FONT, "size": 12},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.01, "xanchor": "right", "x": 1.0},
        "hoverlabel": {"font": {"family": FONT}},
    }
    fig.update_layout({**base, **layout})
    return fig


def _text(value) -> str:
    # plotly.js reads a few HTML tags in its text; escaped, a label such as "<b>" shows literally.
    return html.escape(str(value), quote=False)


def _palette(n: int) -> list[str]:
    from plotly.colors import qualitative

    return qualitative.Plotly if n <= 10 else qualitative.Dark24


def _fig_per_keyword(metrics: dict) -> go.Figure | None:
    import plotly.graph_objects as go

    rows = _per_label(metrics)
    if not rows:
        return None
    labels = [_text(label) for label, _ in rows]
    fig = go.Figure()
    for key, name in (("precision", "precision"), ("recall", "recall"), ("f1", "F1")):
        fig.add_bar(
            name=name,
            x=labels,
            y=[m[key] for _, m in rows],
            customdata=[m["support"] for _, m in rows],
            hovertemplate=f"%{{x}}<br>{name} %{{y:.1%}}<br>support %{{customdata}}<extra></extra>",
        )
    return _style(
        fig,
        f"Per keyword ({_split(metrics)[0]} split)",
        barmode="group",
        xaxis={"type": "category"},
        yaxis={"tickformat": ".0%", "range": [0, 1.05]},
    )


def _heatmap(matrix: list[list[int]], labels: list[str], **kwargs) -> go.Heatmap:
    import plotly.graph_objects as go

    totals = [sum(row) for row in matrix]
    share = [[count / total if total else 0.0 for count in row] for row, total in zip(matrix, totals)]
    small = len(labels) <= 20  # counts written in the cells; larger matrices keep them for the hover
    return go.Heatmap(
        z=share,
        x=[_text(label) for label in labels],
        y=[_text(label) for label in labels],
        customdata=matrix,
        text=[[str(c) if c else "" for c in row] for row in matrix] if small else None,
        texttemplate="%{text}" if small else None,
        hovertemplate="true %{y}<br>predicted %{x}<br>%{z:.1%} of the row (%{customdata} clips)<extra></extra>",
        zmin=0,
        zmax=1,
        xgap=1,
        ygap=1,
        **kwargs,
    )


def _fig_confusion(metrics: dict) -> go.Figure | None:
    import plotly.graph_objects as go

    matrix = _confusion(metrics)
    if matrix is None:
        return None
    labels = metrics["labels"]
    fig = go.Figure(
        _heatmap(matrix, labels, colorscale="Blues", colorbar={"title": {"text": "row share"}, "tickformat": ".0%"})
    )
    return _style(
        fig,
        "Confusion matrix (rows: true label, normalised; numbers: clips)",
        height=max(FIGURE_HEIGHT, 160 + 30 * len(labels)),
        xaxis={"type": "category", "title": {"text": "predicted"}, "tickangle": -45 if len(labels) > 8 else 0},
        yaxis={"type": "category", "title": {"text": "true"}, "autorange": "reversed"},
    )


def _fig_snr(metrics: dict) -> go.Figure | None:
    import plotly.graph_objects as go

    series = _noise_series(metrics)
    if not series:
        return None
    fig = go.Figure()
    snrs = sorted({snr for points in series.values() for snr, _ in points})
    clean = _clean(metrics)
    if clean is not None:
        fig.add_scatter(
            x=[snrs[0], snrs[-1]],
            y=[clean["accuracy"]] * 2,
            mode="lines",
            name=f"clean ({clean['accuracy']:.1%})",
            line={"dash": "dash", "color": "#555"},
            hovertemplate="clean %{y:.1%}<extra></extra>",
        )
    for noise, points in series.items():
        fig.add_scatter(
            x=[snr for snr, _ in points],
            y=[c["accuracy"] for _, c in points],
            customdata=[[_text(c["name"]), c["clips"], c["f1_macro"]] for _, c in points],
            mode="lines+markers",
            name=_text(noise),
            hovertemplate="%{customdata[0]}<br>accuracy %{y:.1%}<br>macro F1 %{customdata[2]:.1%}"
            "<br>%{customdata[1]} clips<extra></extra>",
        )
    return _style(
        fig,
        "Accuracy vs signal-to-noise ratio",
        xaxis={"title": {"text": "SNR (dB)"}, "tickvals": snrs},
        yaxis={"title": {"text": "accuracy"}, "tickformat": ".0%", "range": [0, 1.02]},
    )


def _fig_devices(metrics: dict) -> go.Figure | None:
    from plotly.subplots import make_subplots

    devices, levels = _device_bars(metrics)
    panels = [(title, bars) for title, bars in (("device profile", devices), ("input level", levels)) if bars]
    if not panels:
        return None
    fig = make_subplots(
        rows=1,
        cols=len(panels),
        shared_yaxes=True,
        column_widths=[len(bars) + 1 for _, bars in panels],
        subplot_titles=[title for title, _ in panels],
        horizontal_spacing=0.06,
    )
    colors = ("#4c78a8", "#f58518")
    for col, (title, bars) in enumerate(panels, start=1):
        fig.add_bar(
            x=[_text(name) for name, _ in bars],
            y=[c["accuracy"] for _, c in bars],
            customdata=[[_text(c["name"]), c["clips"], c["f1_macro"]] for _, c in bars],
            marker_color=colors[col - 1],
            text=[f"{c['accuracy']:.1%}" for _, c in bars],
            textposition="inside",
            insidetextanchor="end",
            textfont={"color": "white"},
            name=title,
            showlegend=False,
            hovertemplate="%{customdata[0]}<br>accuracy %{y:.1%}<br>macro F1 %{customdata[2]:.1%}"
            "<br>%{customdata[1]} clips<extra></extra>",
            row=1,
            col=col,
        )
        fig.update_xaxes(type="category", row=1, col=col)
    clean = _clean(metrics)
    for col in range(1, len(panels) + 1) if clean is not None else ():
        label = {"annotation_text": f"clean {clean['accuracy']:.1%}", "annotation_position": "top left"}
        fig.add_hline(
            y=clean["accuracy"], line_dash="dash", line_color="#555", row=1, col=col, **(label if col == 1 else {})
        )
    fig.update_yaxes(tickformat=".0%", range=[0, 1.08])
    fig.update_yaxes(title_text="accuracy", row=1, col=1)
    return _style(fig, "Accuracy by recording device and input level")


def _fig_speakers(metrics: dict) -> go.Figure | None:
    import plotly.graph_objects as go

    speakers = _speakers(metrics)
    if not speakers:
        return None
    fig = go.Figure(
        go.Box(
            x=[s["accuracy"] for _, s in speakers],
            y=[_text(_split(metrics)[0])] * len(speakers),
            orientation="h",
            boxpoints="all",
            jitter=0.6,
            pointpos=0,
            marker={"size": 6, "opacity": 0.6},
            text=[_text(spk) for spk, _ in speakers],
            customdata=[s["clips"] for _, s in speakers],
            hovertemplate="speaker %{text}<br>%{x:.1%} of %{customdata} clips<extra></extra>",
            name="speakers",
            showlegend=False,
        )
    )
    return _style(
        fig,
        f"Accuracy per speaker ({len(speakers)} speakers)",
        height=280,
        xaxis={"title": {"text": "accuracy"}, "tickformat": ".0%", "range": _accuracy_range(speakers)},
        yaxis={"type": "category"},
    )


def _accuracy_range(speakers: list[tuple[str, dict]]) -> list[float]:
    """From a little below the worst speaker (in steps of 10%) to 100%: good models crowd the top."""
    low = math.floor(max(0.0, min(s["accuracy"] for _, s in speakers) - 0.02) * 10) / 10
    return [low - 0.01, 1.01]


_PROBIT = NormalDist()


def _probit(rate: float) -> float:
    return _PROBIT.inv_cdf(min(max(rate, DET_RANGE[0]), DET_RANGE[1]))


def _det_axes() -> dict:
    axis = {
        "tickvals": [_probit(t) for t in DET_TICKS],
        "ticktext": [f"{100 * t:g}%" for t in DET_TICKS],
        "range": [_probit(DET_RANGE[0]) - 0.05, _probit(DET_RANGE[1]) + 0.05],
        "zeroline": False,
        "constrain": "domain",  # square axes shrink the plot rather than widen the range
        "showline": True,
        "linecolor": "#bbb",
    }
    return {
        "xaxis": {**axis, "title": {"text": "false alarm rate (one keyword vs the rest)"}},
        "yaxis": {**axis, "title": {"text": "miss rate"}, "scaleanchor": "x", "scaleratio": 1},
    }


def _det_trace(label: str, curve: dict, color: str, name: str, **kwargs) -> list:
    import plotly.graph_objects as go

    thresholds = curve["thresholds"] if len(curve["thresholds"]) == len(curve["fpr"]) else [None] * len(curve["fpr"])
    eer = curve.get("eer")
    traces = [
        go.Scatter(
            # Rounded: hundreds of thresholds per keyword would otherwise add megabytes of digits.
            x=[round(_probit(v), 4) for v in curve["fpr"]],
            y=[round(_probit(v), 4) for v in curve["fnr"]],
            customdata=[
                [round(f, 5), round(m, 5), round(t, 4) if _is_num(t) else float("nan")]
                for f, m, t in zip(curve["fpr"], curve["fnr"], thresholds)
            ],
            mode="lines",
            line={"color": color, "width": 2},
            name=name,
            hovertemplate=f"{_text(label)}<br>false alarms %{{customdata[0]:.2%}}<br>misses %{{customdata[1]:.2%}}"
            "<br>threshold %{customdata[2]:.3f}<extra></extra>",
            **kwargs,
        )
    ]
    if _is_num(eer):
        traces.append(
            go.Scatter(
                x=[_probit(eer)],
                y=[_probit(eer)],
                mode="markers",
                marker={"color": color, "size": 9, "symbol": "circle-open", "line": {"width": 2}},
                showlegend=False,
                hovertemplate=f"{_text(label)}: EER {eer:.2%}<extra></extra>",
                **{k: v for k, v in kwargs.items() if k == "legendgroup"},
            )
        )
    return traces


def _eer_line() -> go.Scatter:
    import plotly.graph_objects as go

    ends = [_probit(DET_RANGE[0]), _probit(DET_RANGE[1])]
    return go.Scatter(
        x=ends,
        y=ends,
        mode="lines",
        line={"dash": "dot", "color": "#999", "width": 1},
        name="EER line",
        hoverinfo="skip",
    )


def _fig_det(metrics: dict) -> go.Figure | None:
    import plotly.graph_objects as go

    curves = _det(metrics)
    if not curves:
        return None
    colors = _palette(len(curves))
    fig = go.Figure(_eer_line())
    for i, (label, curve) in enumerate(curves):
        eer = curve.get("eer")
        name = f"{_text(label)} (EER {eer:.1%})" if _is_num(eer) else _text(label)
        fig.add_traces(_det_trace(label, curve, colors[i % len(colors)], name, legendgroup=f"l{i}"))
    return _style(
        fig,
        "DET curves, one keyword vs the rest (probit axes, circles mark the EER)",
        height=560,
        legend={"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1.0, "yanchor": "top"},
        **_det_axes(),
    )


def _fig_calibration(metrics: dict) -> go.Figure | None:
    import plotly.graph_objects as go

    cal = _calibration(metrics)
    if cal is None:
        return None
    ece, bins = cal
    fig = go.Figure()
    fig.add_scatter(
        x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash", "color": "#555"}, name="perfect calibration"
    )
    fig.add_bar(
        x=[(b["lower"] + b["upper"]) / 2 for b in bins],
        y=[b["accuracy"] for b in bins],
        width=[(b["upper"] - b["lower"]) * 0.95 for b in bins],
        customdata=[[b["lower"], b["upper"], b["confidence"], b["count"]] for b in bins],
        marker_color="#4c78a8",
        name="accuracy",
        hovertemplate="confidence %{customdata[0]:.2f} to %{customdata[1]:.2f}<br>accuracy %{y:.1%}"
        "<br>mean confidence %{customdata[2]:.1%}<br>%{customdata[3]} clips<extra></extra>",
    )
    fig.add_scatter(
        x=[(b["lower"] + b["upper"]) / 2 for b in bins],
        y=[b["confidence"] for b in bins],
        mode="markers",
        marker={"color": "#e45756", "size": 8, "symbol": "diamond"},
        name="mean confidence",
        hovertemplate="mean confidence %{y:.1%}<extra></extra>",
    )
    return _style(
        fig,
        f"Reliability diagram (ECE {ece:.1%})",
        xaxis={"title": {"text": "confidence of the predicted label"}, "range": [0, 1], "tickformat": ".0%"},
        yaxis={"title": {"text": "accuracy"}, "range": [0, 1.02], "tickformat": ".0%"},
        bargap=0,
    )


def _fig_stream(metrics: dict) -> go.Figure | None:
    import plotly.graph_objects as go

    stream = _stream(metrics)
    if stream is None:
        return None
    default, sweep = stream
    fig = go.Figure()
    if sweep:
        fig.add_scatter(
            x=[p["false_accepts_per_hour"] for p in sweep],
            y=[p["miss_rate"] for p in sweep],
            customdata=[p.get("threshold") if _is_num(p.get("threshold")) else float("nan") for p in sweep],
            mode="lines+markers",
            name="threshold sweep",
            hovertemplate="threshold %{customdata:.3f}<br>miss rate %{y:.1%}<br>%{x:.2f} false accepts/h<extra></extra>",
        )
    if _is_num(default.get("miss_rate")) and _is_num(default.get("false_accepts_per_hour")):
        threshold = default.get("threshold")
        fig.add_scatter(
            x=[default["false_accepts_per_hour"]],
            y=[default["miss_rate"]],
            mode="markers",
            marker={"symbol": "star", "size": 14, "color": "#e45756"},
            name=f"operating point (threshold {threshold:g})" if _is_num(threshold) else "operating point",
            hovertemplate="miss rate %{y:.1%}<br>%{x:.2f} false accepts/h<extra></extra>",
        )
    if not fig.data:
        return None
    return _style(
        fig,
        "Streaming detection: miss rate vs false accepts per hour",
        xaxis={"title": {"text": "false accepts per hour"}, "rangemode": "tozero"},
        yaxis={"title": {"text": "miss rate"}, "tickformat": ".0%", "rangemode": "tozero"},
    )


def _figures(metrics: dict) -> dict[str, go.Figure]:
    built = {name: build(metrics) for name, build in _FIGURES.items()}
    return {name: fig for name, fig in built.items() if fig is not None}


_FIGURES = {
    "per_keyword": _fig_per_keyword,
    "confusion": _fig_confusion,
    "snr": _fig_snr,
    "devices": _fig_devices,
    "speakers": _fig_speakers,
    "det": _fig_det,
    "calibration": _fig_calibration,
    "stream": _fig_stream,
}


# ---------------------------------------------------------------------------------------------
# Figures comparing runs


def _cmp_per_keyword(runs: list[dict], names: list[str]) -> go.Figure | None:
    import plotly.graph_objects as go

    per_run = [dict(_per_label(run)) for run in runs]
    labels = list(dict.fromkeys(label for per in per_run for label in per))
    if not labels:
        return None
    fig = go.Figure()
    for name, per in zip(names, per_run):
        fig.add_bar(
            name=_text(name),
            x=[_text(label) for label in labels],
            y=[per[label]["f1"] if label in per else None for label in labels],
            hovertemplate=f"{_text(name)}<br>%{{x}}: F1 %{{y:.1%}}<extra></extra>",
        )
    return _style(
        fig,
        "F1 per keyword",
        barmode="group",
        xaxis={"type": "category"},
        yaxis={"tickformat": ".0%", "range": [0, 1.05]},
    )


def _cmp_confusion(runs: list[dict], names: list[str]) -> go.Figure | None:
    from plotly.subplots import make_subplots

    panels = [(name, run) for name, run in zip(names, runs) if _confusion(run) is not None]
    if not panels:
        return None
    cols = min(len(panels), 3)
    rows = math.ceil(len(panels) / cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[_text(n) for n, _ in panels],
        horizontal_spacing=0.08,
        vertical_spacing=0.12,
    )
    for i, (_, run) in enumerate(panels):
        fig.add_trace(
            _heatmap(_confusion(run), run["labels"], coloraxis="coloraxis"), row=i // cols + 1, col=i % cols + 1
        )
    fig.update_xaxes(type="category", tickangle=-45)
    fig.update_yaxes(type="category", autorange="reversed")
    n = max(len(run["labels"]) for _, run in panels)
    return _style(
        fig,
        "Confusion matrices (rows: true label, normalised)",
        height=rows * max(360, 120 + 26 * n) + 40,
        coloraxis={"colorscale": "Blues", "cmin": 0, "cmax": 1, "colorbar": {"tickformat": ".0%"}},
    )


def _cmp_snr(runs: list[dict], names: list[str]) -> go.Figure | None:
    from plotly.subplots import make_subplots

    per_run = [_noise_series(run) for run in runs]
    noises = list(dict.fromkeys(noise for series in per_run for noise in series))
    if not noises:
        return None
    colors = _palette(len(runs))
    fig = make_subplots(
        rows=1, cols=len(noises), shared_yaxes=True, subplot_titles=[_text(n) for n in noises], horizontal_spacing=0.03
    )
    snrs = sorted({snr for series in per_run for points in series.values() for snr, _ in points})
    for r, (name, run, series) in enumerate(zip(names, runs, per_run)):
        color, clean = colors[r % len(colors)], _clean(run)
        first = next(iter(series), None)  # the run's legend entry goes with its first line
        for col, noise in enumerate(noises, start=1):
            points = series.get(noise, [])
            if clean is not None and points:
                fig.add_scatter(
                    x=[snrs[0], snrs[-1]],
                    y=[clean["accuracy"]] * 2,
                    mode="lines",
                    line={"dash": "dash", "color": color, "width": 1},
                    legendgroup=f"r{r}",
                    showlegend=False,
                    hovertemplate=f"{_text(name)}: clean %{{y:.1%}}<extra></extra>",
                    row=1,
                    col=col,
                )
            fig.add_scatter(
                x=[snr for snr, _ in points],
                y=[c["accuracy"] for _, c in points],
                mode="lines+markers",
                line={"color": color},
                name=_text(name),
                legendgroup=f"r{r}",
                showlegend=noise == first,
                hovertemplate=f"{_text(name)}<br>{_text(noise)} @ %{{x}} dB: %{{y:.1%}}<extra></extra>",
                row=1,
                col=col,
            )
    pad = max(1.0, 0.08 * (snrs[-1] - snrs[0]))
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02])
    fig.update_xaxes(title_text="SNR (dB)", tickvals=snrs, range=[snrs[0] - pad, snrs[-1] + pad])
    return _style(
        fig,
        "Accuracy vs SNR per noise type (dashed: each run's clean accuracy)",
        margin={"l": 64, "r": 24, "t": 100, "b": 56},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.1, "xanchor": "right", "x": 1.0},
    )


def _cmp_devices(runs: list[dict], names: list[str]) -> go.Figure | None:
    import plotly.graph_objects as go

    per_run = []
    for run in runs:
        devices, levels = _device_bars(run)
        per_run.append({**dict(devices), **{f"level {name}": c for name, c in levels}})
    bars = list(dict.fromkeys(bar for per in per_run for bar in per))
    if not bars:
        return None
    fig = go.Figure()
    for name, per in zip(names, per_run):
        fig.add_bar(
            name=_text(name),
            x=[_text(b) for b in bars],
            y=[per[b]["accuracy"] if b in per else None for b in bars],
            hovertemplate=f"{_text(name)}<br>%{{x}}: %{{y:.1%}}<extra></extra>",
        )
    return _style(
        fig,
        "Accuracy by recording device and input level",
        barmode="group",
        xaxis={"type": "category"},
        yaxis={"tickformat": ".0%", "range": [0, 1.05]},
    )


def _cmp_speakers(runs: list[dict], names: list[str]) -> go.Figure | None:
    import plotly.graph_objects as go

    fig, everyone = go.Figure(), []
    for name, run in zip(names, runs):
        speakers = _speakers(run)
        everyone += speakers
        if speakers:
            fig.add_box(
                x=[s["accuracy"] for _, s in speakers],
                name=_text(name),
                orientation="h",
                boxpoints="all",
                jitter=0.6,
                pointpos=0,
                marker={"size": 5, "opacity": 0.6},
                text=[_text(spk) for spk, _ in speakers],
                hovertemplate="speaker %{text}: %{x:.1%}<extra></extra>",
            )
    if not fig.data:
        return None
    return _style(
        fig,
        "Accuracy per speaker",
        height=160 + 70 * len(fig.data),
        showlegend=False,
        xaxis={"title": {"text": "accuracy"}, "tickformat": ".0%", "range": _accuracy_range(everyone)},
        yaxis={"type": "category", "autorange": "reversed"},
    )


def _cmp_det(runs: list[dict], names: list[str]) -> go.Figure | None:
    import plotly.graph_objects as go

    per_run = [{label: c.get("eer") for label, c in _det(run)} for run in runs]
    labels = list(dict.fromkeys(label for per in per_run for label in per))
    if not labels:
        return None
    fig = go.Figure()
    for name, per in zip(names, per_run):
        fig.add_bar(
            name=_text(name),
            x=[_text(label) for label in labels],
            y=[per.get(label) if _is_num(per.get(label)) else None for label in labels],
            hovertemplate=f"{_text(name)}<br>%{{x}}: EER %{{y:.2%}}<extra></extra>",
        )
    return _style(
        fig,
        "Equal error rate per keyword, one vs the rest (lower is better)",
        barmode="group",
        xaxis={"type": "category"},
        yaxis={"tickformat": ".1%", "rangemode": "tozero"},
    )


def _cmp_calibration(runs: list[dict], names: list[str]) -> go.Figure | None:
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, run in zip(names, runs):
        cal = _calibration(run)
        if cal is not None:
            ece, bins = cal
            fig.add_scatter(
                x=[b["confidence"] for b in bins],
                y=[b["accuracy"] for b in bins],
                customdata=[b["count"] for b in bins],
                mode="lines+markers",
                name=f"{_text(name)} (ECE {ece:.1%})",
                hovertemplate="confidence %{x:.1%}<br>accuracy %{y:.1%}<br>%{customdata} clips<extra></extra>",
            )
    if not fig.data:
        return None
    fig.add_scatter(
        x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash", "color": "#555"}, name="perfect calibration"
    )
    return _style(
        fig,
        "Reliability: accuracy vs mean confidence per bin",
        xaxis={"title": {"text": "mean confidence"}, "range": [0, 1], "tickformat": ".0%"},
        yaxis={"title": {"text": "accuracy"}, "range": [0, 1.02], "tickformat": ".0%"},
    )


def _cmp_stream(runs: list[dict], names: list[str]) -> go.Figure | None:
    import plotly.graph_objects as go

    fig = go.Figure()
    colors = _palette(len(runs))
    for r, (name, run) in enumerate(zip(names, runs)):
        stream = _stream(run)
        if stream is None:
            continue
        default, sweep = stream
        color = colors[r % len(colors)]
        if sweep:
            fig.add_scatter(
                x=[p["false_accepts_per_hour"] for p in sweep],
                y=[p["miss_rate"] for p in sweep],
                mode="lines+markers",
                line={"color": color},
                name=_text(name),
                legendgroup=f"r{r}",
                hovertemplate=f"{_text(name)}<br>miss rate %{{y:.1%}}<br>%{{x:.2f}} FA/h<extra></extra>",
            )
        if _is_num(default.get("miss_rate")) and _is_num(default.get("false_accepts_per_hour")):
            fig.add_scatter(
                x=[default["false_accepts_per_hour"]],
                y=[default["miss_rate"]],
                mode="markers",
                marker={"symbol": "star", "size": 14, "color": color},
                name=f"{_text(name)} operating point",
                legendgroup=f"r{r}",
                showlegend=not sweep,
                hovertemplate=f"{_text(name)} operating point<br>miss rate %{{y:.1%}}<br>%{{x:.2f}} FA/h<extra></extra>",
            )
    if not fig.data:
        return None
    return _style(
        fig,
        "Streaming detection: miss rate vs false accepts per hour (stars: operating points)",
        xaxis={"title": {"text": "false accepts per hour"}, "rangemode": "tozero"},
        yaxis={"title": {"text": "miss rate"}, "tickformat": ".0%", "rangemode": "tozero"},
    )


def _compare_figures(runs: list[dict], names: list[str]) -> dict[str, go.Figure]:
    built = {name: build(runs, names) for name, build in _COMPARE_FIGURES.items()}
    return {name: fig for name, fig in built.items() if fig is not None}


_COMPARE_FIGURES = {
    "per_keyword": _cmp_per_keyword,
    "confusion": _cmp_confusion,
    "snr": _cmp_snr,
    "devices": _cmp_devices,
    "speakers": _cmp_speakers,
    "det": _cmp_det,
    "calibration": _cmp_calibration,
    "stream": _cmp_stream,
}


# ---------------------------------------------------------------------------------------------
# HTML pieces. Every string from metrics.json goes through `_esc`.

_esc = html.escape


def _pct(value, digits: int = 1) -> str:
    return f"{100 * value:.{digits}f}%" if _is_num(value) else "—"


def _num(value, fmt: str = ".4g") -> str:
    if not _is_num(value):
        return "—" if value is None else _esc(str(value))
    return f"{value:,}" if isinstance(value, int) else format(value, fmt)


def _td(text: str, *, sort=None, num: bool = False, raw: bool = False, bold: bool = False) -> str:
    """A table cell; `text` is escaped unless `raw`; `sort` is the key the sortable table uses."""
    attrs = (' class="n"' if num else "") + (f' data-sort="{_esc(str(sort))}"' if sort is not None else "")
    body = text if raw else _esc(text)
    return f"<td{attrs}>{f'<b>{body}</b>' if bold else body}</td>"


def _table(
    headers: list[str] | None, rows: list[list[str]], *, numeric: set[int] = frozenset(), sortable: bool = False
) -> str:
    """`headers` plain text (None: no header row), `rows` lists of `_td` cells; `numeric` columns align right."""
    align = ' class="n"'
    head = "".join(f"<th{align if i in numeric else ''}>{_esc(h)}</th>" for i, h in enumerate(headers or []))
    thead = f"<thead><tr>{head}</tr></thead>" if headers else ""
    body = "".join(f"<tr>{''.join(row)}</tr>" for row in rows)
    cls = ' class="sortable"' if sortable else ""
    return f'<div class="scroll"><table{cls}>{thead}<tbody>{body}</tbody></table></div>'


def _note(what: str) -> str:
    return f'<p class="note">{_esc(what)} not in this metrics.json: {EVALUATE_HINT}</p>'


def _cards(items: list[tuple[str, str, str]]) -> str:
    """(label, value, detail) cards; all plain text."""
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><div class="k">{_esc(k)}</div><div class="v">{_esc(v)}</div>'
            f'<div class="d">{_esc(d)}</div></div>'
            for k, v, d in items
        )
        + "</div>"
    )


def _figure_html(fig: go.Figure, div_id: str) -> str:
    import plotly.io as pio

    # plotly's JSON escapes <, > and / so text from metrics.json cannot close the <script>.
    div = pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id, config=PLOT_CONFIG)
    return f'<div class="figure">{div}</div>'


def _section(section_id: str, body: str, heading: str | None = None) -> str:
    heading = heading or dict(SECTIONS)[section_id]
    return f'<section id="{section_id}"><h2>{_esc(heading)}</h2>{body}</section>'


def _audio_cell(audio: str | None, base_dir: Path) -> str:
    if not audio:
        return '<span class="muted">no audio saved</span>'
    path = Path(audio) if Path(audio).is_absolute() else base_dir / audio
    try:
        data = path.read_bytes() if path.stat().st_size <= MAX_AUDIO_BYTES else None
    except OSError:
        return f'<span class="muted" title="{_esc(str(path))}">audio not found</span>'
    if data is None or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return f'<span class="muted" title="{_esc(str(path))}">not a short WAV file, not embedded</span>'
    encoded = base64.b64encode(data).decode("ascii")
    return f'<audio controls preload="metadata" src="data:audio/wav;base64,{encoded}"></audio>'


# ---------------------------------------------------------------------------------------------
# The one-run page


def _summary_cards(metrics: dict) -> list[tuple[str, str, str]]:
    split_name, split = _split(metrics)
    runtime = (metrics.get("evaluation") or {}).get("runtime") or {}
    calibration = split.get("calibration") or {}
    clean, babble, worst = _clean(metrics), _babble_0db(metrics), _worst_device(metrics)
    return [
        ("accuracy", _pct(split.get("accuracy")), f"{split_name} split"),
        ("balanced accuracy", _pct(split.get("balanced_accuracy")), "mean recall per label"),
        ("macro F1", _pct(split.get("f1_macro")), "every label counts the same"),
        ("weighted F1", _pct(split.get("f1_weighted")), "labels weighted by support"),
        ("loss", _num(split.get("loss")), "cross-entropy"),
        ("ECE", _pct(calibration.get("ece")), "expected calibration error"),
        ("clips", _num(split.get("clips")), f"{split_name} split"),
        (
            "evaluation runtime",
            f"{runtime['seconds']:.1f} s" if _is_num(runtime.get("seconds")) else "—",
            f"{runtime['clips_per_second']:,.0f} clips/s over {runtime.get('clips', 0):,} clips"
            if _is_num(runtime.get("clips_per_second"))
            else "not evaluated",
        ),
        ("clean", _pct(clean["accuracy"]) if clean else "—", "accuracy without corruption"),
        ("babble at 0 dB", _pct(babble["accuracy"]) if babble else "—", "accuracy, speech-like noise"),
        (
            "worst device",
            _pct(worst[1]["accuracy"]) if worst else "—",
            f"accuracy, {worst[0]}" if worst else "no device conditions",
        ),
    ]


def _summary_text(metrics: dict) -> str:
    lines = []
    evaluation = metrics.get("evaluation")
    if evaluation:
        runtime = evaluation.get("runtime") or {}
        extra = ", ".join(
            f"{k.replace('_', ' ')} {runtime[k]}" for k in ("batch_size", "backend") if runtime.get(k) is not None
        )
        lines.append(
            f"Scored {len(evaluation.get('conditions') or [])} conditions of the {evaluation.get('split')} split"
            + (f" ({extra})." if extra else ".")
        )
    train = metrics.get("train") or {}
    if train:
        parts = [
            f"{train['epochs']} epochs" if "epochs" in train else "",
            f"{train['steps']:,} steps" if "steps" in train else "",
        ]
        text = "Trained " + ", ".join(p for p in parts if p)
        if _is_num(train.get("seconds")):
            text += f" in {train['seconds']:,.0f} s"
        if _is_num(train.get("samples_per_second")):
            text += f" ({train['samples_per_second']:,.0f} samples/s)"
        if "best_epoch" in metrics:
            text += f"; best epoch {metrics['best_epoch']}"
        validation = metrics.get("validation") or {}
        if _is_num(validation.get("accuracy")):
            text += f"; validation accuracy {_pct(validation['accuracy'])}"
        lines.append(text + ".")
    return "".join(f"<p>{_esc(line)}</p>" for line in lines)


def _per_keyword_table(metrics: dict) -> str:
    rows = [
        [
            _td(label),
            *(_td(_pct(m[k]), sort=m[k], num=True) for k in ("precision", "recall", "f1")),
            _td(f"{m['support']:,}", sort=m["support"], num=True),
        ]
        for label, m in _per_label(metrics)
    ]
    table = _table(["keyword", "precision", "recall", "F1", "support"], rows, numeric={1, 2, 3, 4}, sortable=True)
    return '<p class="muted">Click a column to sort.</p>' + table


def _conditions_table(metrics: dict) -> str:
    rows = [
        [
            _td(c["name"]),
            _td(c["kind"]),
            _td(f"{c['clips']:,}", sort=c["clips"], num=True),
            _td(_pct(c["accuracy"]), sort=c["accuracy"], num=True),
            _td(_pct(c.get("balanced_accuracy")), sort=c.get("balanced_accuracy", -1), num=True),
            _td(_pct(c["f1_macro"]), sort=c["f1_macro"], num=True),
            _td(_num(c.get("loss")), sort=c.get("loss", -1), num=True),
        ]
        for c in _conditions(metrics)
    ]
    table = _table(
        ["condition", "kind", "clips", "accuracy", "balanced accuracy", "macro F1", "loss"],
        rows,
        numeric={2, 3, 4, 5, 6},
        sortable=True,
    )
    return f"<details><summary>All {len(rows)} conditions as a table</summary>{table}</details>"


def _skipped(metrics: dict) -> str:
    skipped = (metrics.get("evaluation") or {}).get("skipped_conditions") or []
    if not skipped:
        return ""
    items = "".join(f"<li><code>{_esc(s['name'])}</code>: {_esc(s['why'])}</li>" for s in skipped)
    return f'<p class="muted">Skipped conditions:</p><ul class="muted">{items}</ul>'


def _speakers_body(metrics: dict, fig_html: str) -> str:
    speakers = _speakers(metrics)
    worst = speakers[:WORST_SPEAKERS]
    rows = [[_td(spk), _td(f"{s['clips']:,}", num=True), _td(_pct(s["accuracy"]), num=True)] for spk, s in worst]
    spread = f"{len(speakers)} speakers, accuracy from {_pct(speakers[0][1]['accuracy'])} to {_pct(speakers[-1][1]['accuracy'])}."
    return (
        fig_html
        + f"<p>{_esc(spread)} The {len(worst)} worst:</p>"
        + _table(["speaker", "clips", "accuracy"], rows, numeric={1, 2})
    )


def _det_table(metrics: dict) -> str:
    rows = [
        [
            _td(label),
            _td(_pct(c.get("eer"), 2), sort=c.get("eer") if _is_num(c.get("eer")) else 2, num=True),
            _td(_num(c.get("auc"), ".4f"), sort=c.get("auc") if _is_num(c.get("auc")) else -1, num=True),
        ]
        for label, c in _det(metrics)
    ]
    table = _table(["keyword", "equal error rate", "AUC"], rows, numeric={1, 2}, sortable=True)
    return (
        table
        if len(rows) <= 12
        else f"<details><summary>EER and AUC of the {len(rows)} keywords</summary>{table}</details>"
    )


def _mistakes_body(metrics: dict, base_dir: Path) -> str:
    evaluation = metrics.get("evaluation")
    if not evaluation:
        return _note("Mistakes with their audio are")
    mistakes = evaluation.get("mistakes") or []
    if not mistakes:
        return '<p class="muted">No mistakes recorded (none made, or <code>kws evaluate --mistakes 0</code>).</p>'
    shown = mistakes[:MAX_MISTAKES]
    rows = [
        [
            _td(m["label"]),
            _td(m["predicted"]),
            _td(_pct(m["score"]), sort=m["score"], num=True),
            _td(m["condition"]),
            _td(m.get("speaker_id") or "—"),
            _td(_audio_cell(m.get("audio"), base_dir), raw=True),
        ]
        for m in shown
    ]
    more = f" (the first {len(shown)} of {len(mistakes)})" if len(mistakes) > len(shown) else ""
    intro = f"<p>The most confident wrong answers{_esc(more)}; play each clip as the model heard it.</p>"
    table = _table(["true", "predicted", "score", "condition", "speaker", "audio"], rows, numeric={2}, sortable=True)
    return intro + table


_STREAM_KEYS = {
    "threshold": ("threshold", lambda v: _num(v, ".3g")),
    "miss_rate": ("miss rate", _pct),
    "false_accepts_per_hour": ("false accepts per hour", lambda v: _num(v, ".3g")),
    "latency_ms_median": ("median latency", lambda v: f"{v:,.0f} ms" if _is_num(v) else _num(v)),
    "latency_ms_p90": ("90th percentile latency", lambda v: f"{v:,.0f} ms" if _is_num(v) else _num(v)),
    "hours": ("hours of audio", lambda v: _num(v, ".3g")),
    "keywords": ("keywords in the stream", _num),
    "hits": ("hits", _num),
    "misses": ("misses", _num),
    "false_accepts": ("false accepts", _num),
    "non_keywords": ("other words in the stream", _num),
    "thresholds": ("per-keyword thresholds", _num),
}


def _stream_body(metrics: dict, fig_html: str) -> str:
    default, _ = _stream(metrics)
    rows = []
    for key, value in default.items():
        name, fmt = _STREAM_KEYS.get(key, (key.replace("_", " "), _num))
        shown = fmt(value) if _is_num(value) else _esc(value)
        rows.append([_td(name), _td(shown, raw=True, num=_is_num(value))])
    table = _table(["at the default threshold", ""], rows, numeric={1}) if rows else ""
    target = (metrics.get("stream") or {}).get("target") or {}
    if _is_num(target.get("false_accepts_per_hour")):
        goal = _num(target["false_accepts_per_hour"], ".3g")
        if _is_num(target.get("threshold")):
            line = (
                f"At most {goal} false accepts per hour needs threshold {_num(target['threshold'], '.3g')}, "
                f"which misses {_pct(target.get('miss_rate'))} of the keywords."
            )
        else:
            line = f"No threshold in the sweep reaches {goal} false accepts per hour."
        table += f"<p>{_esc(line)}</p>"
    detector = (metrics.get("stream") or {}).get("detector") or {}
    if _is_num(detector.get("window")) and _is_num(detector.get("hop")):
        how = "speech embeddings computed once each, 80 ms apart" if detector.get("incremental") else "whole windows"
        line = f"Detector: a {detector['window']:.3g} s window every {detector['hop']:.3g} s, scored from {how}"
        if _is_num(detector.get("smoothing")):
            line += f", {detector['smoothing']:g} windows averaged"
        if _is_num(detector.get("refractory")):
            line += f", {detector['refractory']:.3g} s refractory period"
        tolerance = ((metrics.get("stream") or {}).get("stream") or {}).get("tolerance_seconds")
        if _is_num(tolerance):
            line += f"; a detection up to {tolerance:.3g} s after a word's end counts as a hit"
        table += f"<p>{_esc(line)}.</p>"
    return table + fig_html


def _context_rows(metrics: dict) -> list[tuple[str, str]]:
    """(field, plain text value) pairs of what made the numbers, only those present."""
    context = metrics.get("context") or {}
    train = metrics.get("train") or {}

    def join(mapping) -> str:
        return " · ".join(f"{k} {v}" for k, v in mapping.items() if v is not None) if isinstance(mapping, dict) else ""

    fields = [
        ("model", context.get("model") or metrics.get("model")),
        ("model name", context.get("model_name") or (metrics.get("model") if context else None)),
        ("model type", context.get("model_type")),
        ("parameters", f"{context['parameters']:,}" if isinstance(context.get("parameters"), int) else None),
        ("backend", context.get("backend")),
        ("data", context.get("data") or metrics.get("data")),
        ("protocol", context.get("protocol") or metrics.get("protocol")),
        ("labels", f"{len(metrics['labels'])}: " + ", ".join(metrics["labels"])),
        ("split", context.get("split") or _split(metrics)[0]),
        ("created", context.get("created")),
        ("git commit", context.get("git_commit")),
        ("kwslib", context.get("kwslib")),
        ("versions", join(context.get("versions"))),
        ("host", join(context.get("host"))),
        ("training", join({k.replace("_", " "): v for k, v in train.items()})),
        ("best epoch", metrics.get("best_epoch")),
    ]
    return [(k, str(v)) for k, v in fields if v not in (None, "")]


def _context_body(metrics: dict) -> str:
    rows = [[_td(k), _td(v)] for k, v in _context_rows(metrics)]
    note = "" if metrics.get("context") else _note("The evaluation context (versions, commit, host) is")
    return _table(None, rows) + note


def _single_page(metrics: dict, base_dir: Path, title: str) -> str:
    figs = _figures(metrics)

    def fig(name: str) -> str:
        return _figure_html(figs[name], f"fig-{name}") if name in figs else ""

    split_name, _ = _split(metrics)
    has_eval = bool(metrics.get("evaluation"))
    sections = {
        "summary": _cards(_summary_cards(metrics))
        + _summary_text(metrics)
        + ("" if has_eval else _note("Conditions, calibration and runtime are")),
        "per-keyword": _per_keyword_table(metrics) + fig("per_keyword")
        if _per_label(metrics)
        else _note("Per-keyword metrics are"),
        "confusion": '<p class="muted">Each row is one true label normalised to 100%; hover a cell for its share.</p>'
        + fig("confusion")
        if "confusion" in figs
        else _note("The confusion matrix is"),
        "noise": (fig("snr") or _note("Noise conditions are"))
        + (_conditions_table(metrics) if has_eval else "")
        + _skipped(metrics),
        "devices": fig("devices") or _note("Device and level conditions are"),
        "speakers": _speakers_body(metrics, fig("speakers"))
        if "speakers" in figs
        else _note("Per-speaker accuracy is"),
        "det": fig("det") + _det_table(metrics) if "det" in figs else _note("DET curves are"),
        "calibration": fig("calibration") if "calibration" in figs else _note("Calibration is"),
        "mistakes": _mistakes_body(metrics, base_dir),
        "streaming": _stream_body(metrics, fig("stream")) if _stream(metrics) else None,
        "context": _context_body(metrics),
    }
    context = metrics.get("context") or {}
    subtitle = " · ".join(
        str(v)
        for v in (
            context.get("model_name") or metrics.get("model"),
            context.get("data") or metrics.get("data"),
            context.get("protocol") or metrics.get("protocol"),
            f"{split_name} split" if split_name else None,
            context.get("created"),
        )
        if v
    )
    return _page(title, subtitle, [(sid, body) for sid, body in sections.items() if body is not None])


# ---------------------------------------------------------------------------------------------
# The comparison page

# (label, reader, format, better): better is max/min for bolding the best run, or None.
_COMPARE_ROWS = (
    ("accuracy", lambda m: _split(m)[1].get("accuracy"), _pct, max),
    ("balanced accuracy", lambda m: _split(m)[1].get("balanced_accuracy"), _pct, max),
    ("macro F1", lambda m: _split(m)[1].get("f1_macro"), _pct, max),
    ("weighted F1", lambda m: _split(m)[1].get("f1_weighted"), _pct, max),
    ("loss", lambda m: _split(m)[1].get("loss"), _num, min),
    ("ECE", lambda m: (_split(m)[1].get("calibration") or {}).get("ece"), _pct, min),
    ("clips", lambda m: _split(m)[1].get("clips"), _num, None),
    ("clean", lambda m: (_clean(m) or {}).get("accuracy"), _pct, max),
    ("babble at 0 dB", lambda m: (_babble_0db(m) or {}).get("accuracy"), _pct, max),
    ("worst device", lambda m: w[1]["accuracy"] if (w := _worst_device(m)) else None, _pct, max),
    (
        "evaluation clips/s",
        lambda m: ((m.get("evaluation") or {}).get("runtime") or {}).get("clips_per_second"),
        lambda v: _num(v, ",.0f"),
        max,
    ),
    ("parameters", lambda m: (m.get("context") or {}).get("parameters"), _num, None),
    ("split", lambda m: _split(m)[0], lambda v: _esc(str(v)) if v else "—", None),
)


def _compare_table(names: list[str], rows: list[tuple[str, list, Callable, Callable | None]]) -> str:
    """A table with a row per (label, one value per run, formatter, max/min for the best or None)."""
    cells = []
    for label, values, fmt, better in rows:
        numbers = [v for v in values if _is_num(v)]
        best = better(numbers) if better and len(numbers) > 1 and len(set(numbers)) > 1 else None
        # `fmt` returns HTML-safe text (_pct, _num, _esc).
        bold = [best is not None and v == best for v in values]
        num = bool(numbers)
        cells.append([_td(label)] + [_td(fmt(v), raw=True, num=num, bold=b) for v, b in zip(values, bold)])
    return _table(["", *names], cells, numeric=set(range(1, len(names) + 1)))


def _compare_page(runs: list[dict], names: list[str], title: str) -> str:
    figs = _compare_figures(runs, names)

    def fig(name: str, missing: str) -> str:
        return _figure_html(figs[name], f"cmp-{name}") if name in figs else _note(missing)

    summary_rows = [(label, [read(run) for run in runs], fmt, better) for label, read, fmt, better in _COMPARE_ROWS]
    summary = _compare_table(names, summary_rows) + '<p class="muted">Bold: the best run on that row.</p>'

    per_label = [dict(_per_label(run)) for run in runs]
    labels = list(dict.fromkeys(label for per in per_label for label in per))
    f1_rows = [
        (label, [per[label]["f1"] if label in per else None for per in per_label], _pct, max) for label in labels
    ]

    conditions = [{c["name"]: c for c in _conditions(run)} for run in runs]
    cond_names = list(dict.fromkeys(name for conds in conditions for name in conds))
    cond_rows = [
        (name, [conds[name]["accuracy"] if name in conds else None for conds in conditions], _pct, max)
        for name in cond_names
    ]
    noise = fig("snr", "Noise conditions are")
    if cond_rows:
        noise += "<details><summary>Accuracy per condition as a table</summary>"
        noise += _compare_table(names, cond_rows) + "</details>"

    context_keys = list(dict.fromkeys(k for run in runs for k, _ in _context_rows(run)))
    context_values = [dict(_context_rows(run)) for run in runs]
    context_rows = [(k, [ctx.get(k, "—") for ctx in context_values], _esc, None) for k in context_keys]
    sections = {
        "summary": summary,
        "per-keyword": (
            '<p class="muted">F1 per keyword; bold: the best run.</p>' + _compare_table(names, f1_rows)
            if f1_rows
            else ""
        )
        + fig("per_keyword", "Per-keyword metrics are"),
        "confusion": fig("confusion", "The confusion matrix is"),
        "noise": noise,
        "devices": fig("devices", "Device and level conditions are"),
        "speakers": fig("speakers", "Per-speaker accuracy is"),
        "det": fig("det", "DET curves are"),
        "calibration": fig("calibration", "Calibration is"),
        "streaming": fig("stream", "") if "stream" in figs else None,
        "context": _compare_table(names, context_rows),
    }
    subtitle = f"{len(runs)} runs: " + ", ".join(names)
    return _page(title, subtitle, [(sid, body) for sid, body in sections.items() if body is not None], compare=True)


# ---------------------------------------------------------------------------------------------
# The page shell

_CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --alt: #f6f8fa; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff; line-height: 1.45;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; font-size: 15px; }
.wrap { max-width: 1180px; margin: 0 auto; padding: 0 32px; }
header { padding: 20px 0 12px; border-bottom: 1px solid var(--line); }
header h1 { margin: 0 0 4px; font-size: 1.5em; }
header p { margin: 0; color: var(--muted); }
nav { position: sticky; top: 0; z-index: 10; background: rgba(255,255,255,.96); border-bottom: 1px solid var(--line);
  padding: 6px 0; font-size: .9em; }
nav a { color: var(--accent); text-decoration: none; margin-right: 14px; white-space: nowrap; }
nav a:hover { text-decoration: underline; }
main { padding-bottom: 48px; }
section { margin-top: 28px; }
h2 { font-size: 1.25em; border-bottom: 1px solid var(--line); padding-bottom: 4px; scroll-margin-top: 44px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 10px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 8px 12px; background: var(--alt); }
.card .k { color: var(--muted); font-size: .82em; text-transform: uppercase; letter-spacing: .03em; }
.card .v { font-size: 1.55em; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .d { color: var(--muted); font-size: .8em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: .9em; margin: 8px 0; }
th, td { padding: 4px 12px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: middle; }
th { background: var(--alt); font-weight: 600; }
tbody tr:nth-child(even) { background: #fbfcfd; }
td:first-child { white-space: nowrap; }
.n { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: var(--muted); font-weight: normal; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; }
.note { color: var(--muted); background: var(--alt); border-left: 3px solid var(--line); padding: 8px 12px; }
.muted { color: var(--muted); }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .92em; }
details { margin: 8px 0; } summary { cursor: pointer; color: var(--accent); }
.figure { margin: 8px 0 4px; }
audio { height: 30px; width: 240px; vertical-align: middle; }
footer { color: var(--muted); font-size: .85em; margin-top: 40px; }
"""

# Sorts a table by the clicked column: numbers by their data-sort key, text alphabetically.
_SORT_JS = """
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0], col = th.cellIndex;
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var key = function (row) {
      var cell = row.cells[col], sort = cell.getAttribute("data-sort");
      return sort === null ? cell.textContent.trim().toLowerCase() : parseFloat(sort);
    };
    Array.from(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b);
      var order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return ascending ? order : -order;
    }).forEach(function (row) { body.appendChild(row); });
  });
});
"""


def _page(title: str, subtitle: str, sections: list[tuple[str, str]], *, compare: bool = False) -> str:
    from plotly.offline import get_plotlyjs

    headings = dict(SECTIONS)
    nav = "".join(f'<a href="#{sid}">{_esc(headings[sid])}</a>' for sid, _ in sections)
    body = "".join(_section(sid, html_) for sid, html_ in sections)
    kind = "comparison" if compare else "report"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="kwslib.report"><title>{_esc(title)}</title>'
        f"<style>{_CSS}</style>"
        # plotly.js once, inline: the report must open without a network.
        "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>"
        f"<script>{get_plotlyjs()}</script>"
        "</head><body>"
        f'<header><div class="wrap"><h1>{_esc(title)}</h1><p>{_esc(subtitle)}</p></div></header>'
        f'<nav><div class="wrap">{nav}</div></nav><main class="wrap">{body}'
        f"<footer>kws {kind}, rendered by kwslib.report from metrics.json alone; no number here is recomputed.</footer>"
        f"</main><script>{_SORT_JS}</script></body></html>\n"
    )


def _write_atomic(out: Path, text: str) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
