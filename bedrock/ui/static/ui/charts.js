// Line charts of metrics, drawn with the vendored uPlot from the page's chart data: a json_script
// element "chart-data" holding {figure id: {title, x_label, y_range?, lines: [{label, colour, x, y}]}}.
// Each <figure data-chart="id" hidden> is shown and drawn into; without JavaScript the figures
// stay hidden and the tables beside them carry every number. The run page replaces its figures
// as a running run logs more, and says so with the event "bedrock:charts".
"use strict";

const CHART_HEIGHT = 240;
const drawn = [];  // {figure, plot, observer} of every chart drawn

// The palette is the stylesheet's (--series-0 …), so the swatches beside run numbers match.
function palette() {
  const style = getComputedStyle(document.documentElement);
  const colours = [];
  for (let index = 0; ; index++) {
    const colour = style.getPropertyValue(`--series-${index}`).trim();
    if (!colour) return colours.length ? colours : ["#2456c9"];
    colours.push(colour);
  }
}

function formatValue(value) {
  if (value === null || value === undefined) return "—";
  return String(Number(value.toPrecision(6)));
}

// uPlot wants one x array for all lines: lines sharing theirs are used as they are, others are
// joined on the union of their x values (nulls where a line has no point, bridged by spanGaps).
function alignedData(lines) {
  const first = lines[0].x;
  const shared = lines.every(
    (line) => line.x.length === first.length && line.x.every((x, i) => x === first[i]),
  );
  if (shared) return [first, ...lines.map((line) => line.y)];
  return uPlot.join(lines.map((line) => [line.x, line.y]));
}

function options(spec, width, colours) {
  return {
    width,
    height: CHART_HEIGHT,
    scales: {
      x: { time: false },
      y: spec.y_range ? { range: spec.y_range } : {},
    },
    axes: [{ label: spec.x_label, labelSize: 20 }, { size: 60, values: (u, ticks) => ticks.map(formatValue) }],
    series: [
      { label: spec.x_label, value: (u, value) => formatValue(value) },
      ...spec.lines.map((line) => ({
        label: line.label,
        stroke: colours[line.colour % colours.length],
        width: 1.5,
        spanGaps: true,
        value: (u, value) => formatValue(value),
      })),
    ],
    legend: { live: true },
    cursor: { drag: { x: true, y: false } },
  };
}

function draw(figure, spec, colours) {
  if (!spec || !spec.lines.length) return;
  figure.hidden = false;
  const plot = new uPlot(options(spec, figure.clientWidth, colours), alignedData(spec.lines), figure);
  // Keep the chart as wide as its figure when the window or the grid around it changes.
  const observer = new ResizeObserver(() => {
    const width = figure.clientWidth;
    if (width && width !== plot.width) plot.setSize({ width, height: CHART_HEIGHT });
  });
  observer.observe(figure);
  drawn.push({ figure, plot, observer });
}

function drawAll() {
  // Charts whose figures the page has replaced let go of them.
  for (let index = drawn.length - 1; index >= 0; index--) {
    const chart = drawn[index];
    if (chart.figure.isConnected) continue;
    chart.observer.disconnect();
    chart.plot.destroy();
    drawn.splice(index, 1);
  }
  const source = document.getElementById("chart-data");
  if (!source || typeof uPlot === "undefined") return;
  const data = JSON.parse(source.textContent);
  const colours = palette();
  document.querySelectorAll("figure[data-chart][hidden]").forEach((figure) => {
    draw(figure, data[figure.dataset.chart], colours);
  });
}

document.addEventListener("DOMContentLoaded", drawAll);
document.addEventListener("bedrock:charts", drawAll);
