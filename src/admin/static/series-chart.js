/*
 * The series page's chart (served as /admin/static/series-chart.js): reads #chart-data (ChartData in
 * src/admin/pages.ts), draws with uPlot: slice probability, key slices, threshold, slices with too
 * little lung (grey), and lung opacity (%) on its own right-hand axis when the record has it. x is mm
 * along the slice normal when every slice has a position (superior on the left, as on the summary
 * image), else the slice number. No build step: the file is served as it is.
 */
(() => {
  var el = document.getElementById('chart');
  var src = document.getElementById('chart-data');
  if (!el || !src || typeof uPlot === 'undefined') {
    return;
  }
  var d = JSON.parse(src.textContent);
  var n = d.p.length;
  var byMm = n > 1 && d.pos.every((v) => v !== null);
  var order = d.p.map((_, i) => i);
  // uPlot wants x ascending: positions usually fall from head to feet, so sort them and flip the axis.
  var desc = byMm && d.pos[n - 1] < d.pos[0];
  if (byMm) {
    order.sort((a, b) => d.pos[a] - d.pos[b]);
  }
  var pick = (a) => order.map((i) => a[i]);
  var xs = byMm ? pick(d.pos) : pick(d.slice);
  var sl = pick(d.slice);
  var keys = new Set(d.key);
  var inel = new Set(d.ineligible);
  var thr = d.threshold;
  var p = pick(d.p);
  var key = order.map((i) => (keys.has(d.slice[i]) ? d.p[i] : null));
  var grey = order.map((i) => (inel.has(d.slice[i]) ? d.p[i] : null));
  var xLabel = (_u, v, _si, idx) => {
    if (v === null || v === undefined) return '--';
    var s = idx === null || idx === undefined ? '' : ` (slice ${sl[idx]})`;
    return byMm ? `${v.toFixed(1)} mm${s}` : `slice ${v}`;
  };
  var series = [
    { label: byMm ? 'position' : 'slice', value: xLabel },
    { label: 'probability', stroke: '#1d3557', width: 2, points: { show: false }, scale: 'p' },
    { label: 'key slices', stroke: '#c0392b', width: 0, paths: () => null, points: { show: true, size: 8, fill: '#c0392b' }, scale: 'p' },
  ];
  var data = [xs, p, key];
  if (d.ineligible.length) {
    series.push({
      label: 'too little lung',
      stroke: '#9aa1a9',
      width: 0,
      paths: () => null,
      points: { show: true, size: 7, fill: '#d5d9de' },
      scale: 'p',
    });
    data.push(grey);
  }
  if (thr !== null) {
    series.push({ label: 'threshold', stroke: '#d99a0b', dash: [6, 4], width: 1, points: { show: false }, scale: 'p' });
    data.push(xs.map(() => thr));
  }
  var axes = [
    {
      label: byMm
        ? 'position along the scan (mm along the slice normal, superior on the left)'
        : 'slice number (scored order, superior → inferior)',
    },
    { label: 'probability', scale: 'p' },
  ];
  var scales = { x: { time: false, dir: desc ? -1 : 1 }, p: { range: [0, 1] } };
  if (d.opacity) {
    // Slices with too little lung do not count: a few mm² of lung can read 60 % opaque. The curve and
    // the axis come from the eligible slices; the others are grey dots (cut off above the axis).
    const pctFmt = (_u, v) => (v === null || v === undefined ? '--' : `${v.toFixed(1)} %`);
    const opEl = order.map((i) => (inel.has(d.slice[i]) ? null : d.opacity[i]));
    const opIn = order.map((i) => (inel.has(d.slice[i]) ? d.opacity[i] : null));
    let mx = 0;
    opEl.forEach((v) => {
      if (v !== null && v > mx) {
        mx = v;
      }
    });
    const opMax = Math.min(100, Math.max(5, Math.ceil((mx * 1.2) / 5) * 5));
    series.push({ label: 'lung opacity %', stroke: '#2a9d8f', width: 2, points: { show: false }, scale: 'pct', value: pctFmt });
    data.push(opEl);
    if (d.ineligible.length) {
      series.push({
        label: 'opacity, too little lung',
        stroke: '#9aa1a9',
        width: 0,
        paths: () => null,
        points: { show: true, size: 5, fill: '#d5d9de' },
        scale: 'pct',
        value: pctFmt,
      });
      data.push(opIn);
    }
    axes.push({ label: 'lung opacity (% of lung area, eligible slices)', scale: 'pct', side: 1, grid: { show: false } });
    scales.pct = { range: [0, opMax] };
    el.setAttribute('data-opacity-max', String(opMax));
  }
  var width = Math.max(320, Math.min(el.clientWidth - 16, 1200));
  var u = new uPlot({ width: width, height: 300, series: series, legend: { live: true }, scales: scales, axes: axes }, data, el);
  el.mlsamChart = u;
  el.setAttribute('data-ready', '1');
  el.setAttribute('data-x', byMm ? 'mm' : 'slice');
})();
