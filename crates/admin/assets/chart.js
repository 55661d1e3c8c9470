// A small canvas line chart: several series sharing one y axis, newest point on the right.
"use strict";
window.LineChart = class LineChart {
  constructor(canvas, series, maxPoints) {
    this.canvas = canvas; this.series = series; this.max = maxPoints || 60;
    this.data = series.map(() => []);
  }
  push(values) {
    values.forEach((v, i) => { const d = this.data[i]; d.push(v); if (d.length > this.max) d.shift(); });
    this.draw();
  }
  // The smallest 1, 2 or 5 times a power of ten at or above x (x >= 1 gives whole numbers).
  static nice(x) {
    if (x <= 1) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(x)));
    for (const m of [1, 2, 5, 10]) if (m * p >= x) return m * p;
    return 10 * p;
  }
  draw() {
    const c = this.canvas, ratio = window.devicePixelRatio || 1;
    const w = c.clientWidth || 600, h = c.clientHeight || 220;
    c.width = w * ratio; c.height = h * ratio;
    const g = c.getContext("2d"); g.scale(ratio, ratio); g.clearRect(0, 0, w, h);
    const pad = { l: 44, r: 8, t: 8, b: 18 };
    let top = 1; this.data.forEach(d => d.forEach(v => { if (v > top) top = v; }));
    top = LineChart.nice(top * 1.15);
    g.strokeStyle = "#e3e7ee"; g.fillStyle = "#6b7487"; g.font = "11px sans-serif"; g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = pad.t + (h - pad.t - pad.b) * i / 4;
      g.beginPath(); g.moveTo(pad.l, y); g.lineTo(w - pad.r, y); g.stroke();
      const v = top * (4 - i) / 4;
      g.fillText(top < 8 ? v.toFixed(v % 1 ? 1 : 0) : String(Math.round(v)), 4, y + 4);
    }
    const xs = (w - pad.l - pad.r) / Math.max(1, this.max - 1);
    this.data.forEach((d, si) => {
      g.strokeStyle = this.series[si].color; g.lineWidth = 2; g.beginPath();
      const off = this.max - d.length;
      d.forEach((v, i) => {
        const x = pad.l + (off + i) * xs, y = pad.t + (h - pad.t - pad.b) * (1 - v / top);
        if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
      });
      g.stroke();
    });
  }
};
