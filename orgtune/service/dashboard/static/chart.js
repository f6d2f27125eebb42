// The loss curve: an inline SVG redrawn from {step: {train_loss, valid_loss}} (newest record of a step wins).
import { h } from "/static/api.js";

const PAD = { l: 60, r: 14, t: 14, b: 34 };

function scale(lo, hi, a, b) {
  const span = hi - lo || 1;
  return (v) => a + ((v - lo) / span) * (b - a);
}

function series(points, field) {
  return [...points.entries()].filter(([, p]) => typeof p[field] === "number")
    .sort((x, y) => x[0] - y[0]).map(([step, p]) => [step, p[field]]);
}

function axes(x, y, steps, lo, hi, W, H) {
  const s = { svg: true };
  const ticks = [lo, (lo + hi) / 2, hi].map((v) => [
    h("line", { ...s, x1: PAD.l - 4, x2: W - PAD.r, y1: y(v), y2: y(v), class: "grid" }),
    h("text", { ...s, x: PAD.l - 8, y: y(v) + 4, "text-anchor": "end" }, v.toFixed(3)),
  ]);
  return [
    ...ticks.flat(),
    h("text", { ...s, x: PAD.l, y: H - 10 }, `step ${steps[0]}`),
    h("text", { ...s, x: W - PAD.r, y: H - 10, "text-anchor": "end" }, `step ${steps[1]}`),
  ];
}

// Drawn at the width it is shown at (text stays at its CSS size on a phone as on a desktop).
export function lossChart(points, totalSteps, width = 640) {
  const W = Math.max(280, Math.round(width)), H = Math.round(Math.min(320, Math.max(200, W * 0.36)));
  const train = series(points, "train_loss"), valid = series(points, "valid_loss");
  const all = [...train, ...valid];
  const last = train.at(-1);
  const label = all.length
    ? `Loss curve: ${train.length} training points` + (last ? `, step ${last[0]} loss ${last[1].toFixed(4)}` : "")
      + (valid.length ? `, ${valid.length} validation points` : "")
    : "Loss curve: no steps logged yet";
  const svg = h("svg", { svg: true, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label, id: "loss-chart",
                         "data-train-points": train.length, "data-last-step": last ? last[0] : 0 });
  if (!all.length) return svg;
  const steps = [Math.min(...all.map((p) => p[0]), 0), Math.max(totalSteps || 0, ...all.map((p) => p[0]))];
  const vals = all.map((p) => p[1]);
  let lo = Math.min(...vals), hi = Math.max(...vals);
  if (hi - lo < 1e-6) { lo -= 0.5; hi += 0.5; }
  const x = scale(steps[0], steps[1], PAD.l, W - PAD.r), y = scale(lo, hi, H - PAD.b, PAD.t);
  svg.append(...axes(x, y, steps, lo, hi, W, H));
  const line = (pts, cls) => h("polyline", { svg: true, class: cls, fill: "none",
    points: pts.map(([s, v]) => `${x(s).toFixed(1)},${y(v).toFixed(1)}`).join(" ") });
  if (train.length) svg.append(line(train, "train"));
  if (valid.length) {
    svg.append(line(valid, "valid"));
    for (const [s, v] of valid) svg.append(h("circle", { svg: true, class: "valid", cx: x(s), cy: y(v), r: 3 }));
  }
  return svg;
}

export function legend() {
  return h("p", { class: "legend" }, h("span", { class: "key train" }, "training loss"), " ",
           h("span", { class: "key valid" }, "validation loss"));
}
