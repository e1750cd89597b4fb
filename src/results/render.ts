/**
 * Pixels of the Secondary Captures: the attention heatmap over a lung-window slice and the
 * per-slice probability chart. Colour blending is plain arithmetic on the pixels; every line of
 * text, the legend and the chart are SVG rasterised by sharp (librsvg, DejaVu fonts).
 */
import sharp from 'sharp';
import type { SliceImage } from '../model/preprocess.js';
import type { AttentionMap } from '../contracts/result-record.js';
import { NOT_FOR_DIAGNOSTIC_USE } from './common.js';

export interface RgbImage {
  width: number;
  height: number;
  /** Interleaved RGB, 8 bits per sample, row-major. */
  data: Buffer;
}

/** Colour map (jet) stops: position 0..1 → RGB. The legend is drawn from the same stops. */
export const COLOR_STOPS: readonly [number, [number, number, number]][] = [
  [0, [0, 0, 128]],
  [0.11, [0, 0, 255]],
  [0.36, [0, 255, 255]],
  [0.61, [255, 255, 0]],
  [0.86, [255, 0, 0]],
  [1, [128, 0, 0]],
];

export function colorAt(v: number): [number, number, number] {
  const x = v < 0 ? 0 : v > 1 ? 1 : v;
  for (let i = 1; i < COLOR_STOPS.length; i++) {
    const [p1, c1] = COLOR_STOPS[i] as [number, [number, number, number]];
    const [p0, c0] = COLOR_STOPS[i - 1] as [number, [number, number, number]];
    if (x <= p1) {
      const t = (x - p0) / (p1 - p0);
      return [c0[0] + (c1[0] - c0[0]) * t, c0[1] + (c1[1] - c0[1]) * t, c0[2] + (c1[2] - c0[2]) * t];
    }
  }
  return [128, 0, 0];
}

/** Attention below this is not drawn; above it opacity rises linearly to MAX_ALPHA. */
const ALPHA_FLOOR = 0.2;
const ALPHA_RANGE = 0.5;
const MAX_ALPHA = 0.6;

export interface Window {
  center: number;
  width: number;
}

/** 8-bit gray of a slice in a window (HU for CT; display-range images are used as they are). */
export function windowed(img: SliceImage, w: Window): Uint8Array {
  const n = img.width * img.height;
  const out = new Uint8Array(n);
  if (img.kind === 'hu') {
    const lo = w.center - w.width / 2;
    for (let i = 0; i < n; i++) {
      const v = (((img.data[i] as number) - lo) / w.width) * 255;
      out[i] = v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v);
    }
  } else {
    for (let i = 0; i < n; i++) {
      const v = img.data[i] as number;
      out[i] = v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v);
    }
  }
  return out;
}

/** Bilinear sample of the attention map at a source pixel inside its crop box (pixel centres aligned). */
function attentionAt(map: AttentionMap, x: number, y: number): number {
  const { x0, y0, x1, y1 } = map.cropBox;
  const bw = x1 - x0 + 1;
  const bh = y1 - y0 + 1;
  const fx = Math.min(Math.max(((x - x0 + 0.5) / bw) * map.width - 0.5, 0), map.width - 1);
  const fy = Math.min(Math.max(((y - y0 + 0.5) / bh) * map.height - 0.5, 0), map.height - 1);
  const ix = Math.floor(fx);
  const iy = Math.floor(fy);
  const jx = Math.min(ix + 1, map.width - 1);
  const jy = Math.min(iy + 1, map.height - 1);
  const tx = fx - ix;
  const ty = fy - iy;
  const d = map.data;
  const a = (d[iy * map.width + ix] ?? 0) * (1 - tx) + (d[iy * map.width + jx] ?? 0) * tx;
  const b = (d[jy * map.width + ix] ?? 0) * (1 - tx) + (d[jy * map.width + jx] ?? 0) * tx;
  return a * (1 - ty) + b * ty;
}

/** Gray slice with the attention map upsampled onto its crop box and blended in colour. */
export function blendHeatmap(gray: Uint8Array, width: number, height: number, map: AttentionMap | undefined): Buffer {
  const out = Buffer.alloc(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    const g = gray[i] as number;
    out[i * 3] = g;
    out[i * 3 + 1] = g;
    out[i * 3 + 2] = g;
  }
  if (!map || map.data.length < map.width * map.height) return out;
  const { x0, y0, x1, y1 } = map.cropBox;
  for (let y = Math.max(0, y0); y <= Math.min(height - 1, y1); y++) {
    for (let x = Math.max(0, x0); x <= Math.min(width - 1, x1); x++) {
      const a = attentionAt(map, x, y);
      const alpha = Math.min(Math.max((a - ALPHA_FLOOR) / ALPHA_RANGE, 0), 1) * MAX_ALPHA;
      if (alpha <= 0) continue;
      const [r, g, b] = colorAt(a);
      const i = (y * width + x) * 3;
      const v = gray[y * width + x] as number;
      out[i] = Math.round(v * (1 - alpha) + r * alpha);
      out[i + 1] = Math.round(v * (1 - alpha) + g * alpha);
      out[i + 2] = Math.round(v * (1 - alpha) + b * alpha);
    }
  }
  return out;
}

/** Measured-opacity overlay colours (ground glass, consolidation) and the attention contour's colour. */
export const FINDING_COLOURS = {
  groundGlass: [255, 210, 0] as [number, number, number],
  consolidation: [255, 40, 40] as [number, number, number],
  attention: [0, 230, 255] as [number, number, number],
} as const;
const FINDING_ALPHA = 0.5;
/** The attention contour is drawn where the map crosses this fraction of its peak. */
export const ATTENTION_CONTOUR_LEVEL = 0.5;

/**
 * Gray slice with what the score is built on: the measured ground glass (yellow) and consolidation (red)
 * blended over it (`lesion`: one byte per source pixel, 1 ground glass, 2 consolidation), and the CNN's
 * attention as a secondary layer, a thin cyan contour where it crosses half its peak (never a fill).
 */
export function blendFindings(
  gray: Uint8Array,
  width: number,
  height: number,
  lesion: Uint8Array | undefined,
  map: AttentionMap | undefined,
): Buffer {
  const out = Buffer.alloc(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    const g = gray[i] as number;
    const l = lesion ? (lesion[i] as number) : 0;
    if (l === 0) {
      out[i * 3] = g;
      out[i * 3 + 1] = g;
      out[i * 3 + 2] = g;
      continue;
    }
    const c = l === 2 ? FINDING_COLOURS.consolidation : FINDING_COLOURS.groundGlass;
    out[i * 3] = Math.round(g * (1 - FINDING_ALPHA) + c[0] * FINDING_ALPHA);
    out[i * 3 + 1] = Math.round(g * (1 - FINDING_ALPHA) + c[1] * FINDING_ALPHA);
    out[i * 3 + 2] = Math.round(g * (1 - FINDING_ALPHA) + c[2] * FINDING_ALPHA);
  }
  if (!map || map.data.length < map.width * map.height) return out;
  const { x0, y0, x1, y1 } = map.cropBox;
  const bx0 = Math.max(0, x0);
  const by0 = Math.max(0, y0);
  const bx1 = Math.min(width - 1, x1);
  const by1 = Math.min(height - 1, y1);
  const bw = bx1 - bx0 + 1;
  const bh = by1 - by0 + 1;
  if (bw <= 0 || bh <= 0) return out;
  const above = new Uint8Array(bw * bh);
  for (let y = by0; y <= by1; y++)
    for (let x = bx0; x <= bx1; x++) above[(y - by0) * bw + (x - bx0)] = attentionAt(map, x, y) >= ATTENTION_CONTOUR_LEVEL ? 1 : 0;
  const [r, g, b] = FINDING_COLOURS.attention;
  for (let y = 0; y < bh; y++) {
    for (let x = 0; x < bw; x++) {
      if (!above[y * bw + x]) continue;
      const edge =
        x === 0 ||
        y === 0 ||
        x === bw - 1 ||
        y === bh - 1 ||
        !above[y * bw + x - 1] ||
        !above[y * bw + x + 1] ||
        !above[(y - 1) * bw + x] ||
        !above[(y + 1) * bw + x];
      if (!edge) continue;
      const i = ((y + by0) * width + (x + bx0)) * 3;
      out[i] = r;
      out[i + 1] = g;
      out[i + 2] = b;
    }
  }
  return out;
}

export function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const FONT = 'DejaVu Sans, sans-serif';

function gradientStops(): string {
  return COLOR_STOPS.map(([p, [r, g, b]]) => `<stop offset="${(1 - p).toFixed(3)}" stop-color="rgb(${r},${g},${b})"/>`)
    .reverse()
    .join('');
}

export interface HeatmapText {
  /** Lines of the text band (model, slice, probability, series result), centred above the banner. */
  lines: string[];
  hasAttention: boolean;
  /** The measured opacity is the overlay (ground glass, consolidation) and the attention a contour: a key of those instead of the colour bar. */
  findings?: boolean;
}

/** Font size of a heatmap's burned-in text: readable when the image is shown 300 px wide (the dashboard). */
export function heatmapFontSize(width: number): number {
  return Math.max(12, Math.round(width / 30));
}

/**
 * The overlay of a heatmap: colour legend (right, middle), a text band centred above the red NOT
 * FOR DIAGNOSTIC USE banner (bottom). Nothing in the corners or along the top edge, where viewers
 * draw their own overlays (patient and series, window, image number) and cine controls.
 */
export function heatmapOverlaySvg(width: number, height: number, t: HeatmapText): string {
  const fs = heatmapFontSize(width);
  const pad = Math.round(fs * 0.5);
  const lh = Math.round(fs * 1.25);
  const lines = t.hasAttention ? t.lines : [...t.lines, 'attention map not available'];
  const bfs = Math.round(fs * 1.2);
  const bannerH = Math.round(bfs * 1.6);
  // Text band: as wide as its longest line (DejaVu Sans averages ~0.52 em per character here), centred.
  const bandW = Math.min(width, Math.round(Math.max(...lines.map((l) => l.length)) * fs * 0.54) + 2 * pad);
  const bandH = lines.length * lh + pad;
  const bandY = height - bannerH - bandH;
  const text = lines
    .map(
      (l, i) =>
        `<text x="${width / 2}" y="${bandY + (i + 1) * lh - Math.round(lh * 0.2)}" font-size="${fs}" text-anchor="middle"${i === 0 ? ' font-weight="bold"' : ''}>${xmlEscape(l)}</text>`,
    )
    .join('');
  // Legend: a vertical bar at the right, high at the top, in the middle third of the height.
  const lfs = Math.round(fs * 0.8);
  const barW = Math.max(10, Math.round(width / 40));
  const barH = Math.round(height * 0.34);
  const barX = width - barW - pad * 2 - Math.round(lfs * 2.2);
  const barY = Math.round((height - barH) / 2);
  const floorY = barY + Math.round(barH * (1 - ALPHA_FLOOR));
  const tick = (v: number, y: number) =>
    `<line x1="${barX + barW}" y1="${y}" x2="${barX + barW + 3}" y2="${y}" stroke="white" stroke-width="1"/>` +
    `<text x="${barX + barW + 5}" y="${y + Math.round(lfs * 0.35)}" font-size="${lfs}">${v.toFixed(1)}</text>`;
  const rgb = (c: readonly number[]) => `rgb(${c.join(',')})`;
  const keyRows: [string, string][] = [
    [
      `<rect x="0" y="${-Math.round(lfs * 0.75)}" width="${lfs}" height="${lfs}" fill="${rgb(FINDING_COLOURS.groundGlass)}" fill-opacity="0.8"/>`,
      'ground glass',
    ],
    [
      `<rect x="0" y="${-Math.round(lfs * 0.75)}" width="${lfs}" height="${lfs}" fill="${rgb(FINDING_COLOURS.consolidation)}" fill-opacity="0.8"/>`,
      'consolidation',
    ],
    ...(t.hasAttention
      ? [
          [
            `<line x1="0" y1="${-Math.round(lfs * 0.3)}" x2="${lfs}" y2="${-Math.round(lfs * 0.3)}" stroke="${rgb(FINDING_COLOURS.attention)}" stroke-width="2"/>`,
            `CNN attention ${Math.round(ATTENTION_CONTOUR_LEVEL * 100)} %`,
          ] as [string, string],
        ]
      : []),
  ];
  const keyW = Math.round(lfs * 0.56 * Math.max(...keyRows.map(([, l]) => l.length))) + lfs * 2 + 2 * pad;
  const keyH = keyRows.length * Math.round(lfs * 1.4) + 2 * pad;
  const keyX = width - keyW - pad;
  const keyY = Math.round((height - keyH) / 2);
  const findingsKey =
    `<rect x="${keyX}" y="${keyY}" width="${keyW}" height="${keyH}" fill="black" fill-opacity="0.55"/>` +
    keyRows
      .map(
        ([mark, label], i) =>
          `<g transform="translate(${keyX + pad},${keyY + pad + (i + 1) * Math.round(lfs * 1.4) - Math.round(lfs * 0.35)})">${mark}<text x="${Math.round(lfs * 1.5)}" y="0" font-size="${lfs}">${xmlEscape(label)}</text></g>`,
      )
      .join('');
  const legend = t.findings
    ? findingsKey
    : t.hasAttention
      ? `<defs><linearGradient id="jet" x1="0" y1="0" x2="0" y2="1">${gradientStops()}</linearGradient></defs>` +
        `<rect x="${barX - 2 * pad}" y="${barY - lh - pad}" width="${barW + 3 * pad + Math.round(lfs * 2.2)}" height="${barH + lh + 2 * pad}" fill="black" fill-opacity="0.55"/>` +
        `<rect x="${barX}" y="${barY}" width="${barW}" height="${barH}" fill="url(#jet)"/>` +
        // below the floor the map is not drawn: grey that part of the bar out
        `<rect x="${barX}" y="${floorY}" width="${barW}" height="${barY + barH - floorY}" fill="black" fill-opacity="0.7"/>` +
        `<rect x="${barX}" y="${barY}" width="${barW}" height="${barH}" fill="none" stroke="white" stroke-width="1"/>` +
        tick(1, barY) +
        tick(0.5, barY + Math.round(barH / 2)) +
        tick(ALPHA_FLOOR, floorY) +
        tick(0, barY + barH) +
        `<text x="${barX + barW / 2 + Math.round(lfs * 0.4)}" y="${barY - pad}" font-size="${lfs}" text-anchor="middle">attention</text>`
      : '';
  const banner =
    `<rect x="0" y="${height - bannerH}" width="${width}" height="${bannerH}" fill="#b00000" fill-opacity="0.9"/>` +
    `<text x="${width / 2}" y="${height - Math.round(bannerH * 0.3)}" font-size="${bfs}" font-weight="bold" text-anchor="middle">${NOT_FOR_DIAGNOSTIC_USE}</text>`;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">` +
    `<g font-family="${FONT}" fill="white">` +
    `<rect x="${Math.round((width - bandW) / 2)}" y="${bandY}" width="${bandW}" height="${bandH}" fill="black" fill-opacity="0.65"/>` +
    text +
    legend +
    banner +
    `</g></svg>`
  );
}

/** Composites an SVG overlay onto an RGB image; returns RGB of the same size. */
export async function compositeSvg(rgb: RgbImage, svg: string): Promise<RgbImage> {
  const { data, info } = await sharp(rgb.data, { raw: { width: rgb.width, height: rgb.height, channels: 3 } })
    .composite([{ input: Buffer.from(svg), top: 0, left: 0 }])
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.width !== rgb.width || info.height !== rgb.height || info.channels !== 3) {
    throw new Error(`overlay changed the image to ${info.width}x${info.height}x${info.channels}`);
  }
  return { width: info.width, height: info.height, data };
}

export interface ChartInput {
  title: string;
  subtitle: string;
  /** Slice probabilities in scored order (superior first). */
  probabilities: number[];
  /** mm along the slice normal per slice, when known for every slice. */
  positions: (number | null)[];
  threshold: number;
  margin: number;
  score: number;
  category: string;
  /** Indices (scored order) of the key slices, best first. */
  keySlices: number[];
  /** Label per key slice (e.g. instance number). */
  keyLabels: string[];
}

/** The per-slice probability chart as SVG (dark background, like a viewer). */
export function chartSvg(width: number, height: number, c: ChartInput): string {
  const fs = Math.round(width / 64);
  const labelFs = fs * 0.9;
  const left = Math.round(fs * 4.5);
  const right = Math.round(fs * 2);
  const pw = width - left - right;
  const n = c.probabilities.length;
  const usePos = n > 1 && c.positions.every((p) => p !== null);
  const xs: number[] = usePos ? (c.positions as number[]) : c.probabilities.map((_, i) => i);
  // Scored order runs left to right (superior first); positions are monotonic along it.
  const x0 = xs[0] ?? 0;
  const span = n > 1 && xs[n - 1] !== x0 ? (xs[n - 1] as number) - x0 : 1;
  const X = (i: number) => left + (n > 1 ? (((xs[i] as number) - x0) / span) * pw : pw / 2);
  const XofMm = (mm: number) => left + ((mm - x0) / span) * pw;
  // Key-slice labels: placed without overlaps in as few rows as fit (leader lines to their slices).
  const keys = c.keySlices
    .map((k, j) => ({ k, x: X(k), label: c.keyLabels[j] ?? String(k + 1) }))
    .filter((e) => c.probabilities[e.k] !== undefined);
  const layout = layoutLabels(
    keys.map((e) => e.x),
    keys.map((e) => labelWidth(e.label, labelFs)),
    left,
    left + pw,
    fs * 0.5,
  );
  const rows = Math.max(1, layout.rows);
  const rowH = layout.fontScale * labelFs * 1.25;
  // The subtitle wraps at word boundaries instead of running off the right edge (SC, OHIF).
  const subLines = wrapWords(c.subtitle, width - left - fs, fs);
  const lineH = fs * 1.25;
  const top = Math.round(fs * 4.4 + (subLines.length - 1) * lineH + rows * rowH + fs * 0.6);
  const bottom = Math.round(fs * 8.9);
  const ph = height - top - bottom;
  const Y = (p: number) => top + (1 - p) * ph;
  const parts: string[] = [];
  parts.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="black"/>`);
  // indeterminate band and grid
  parts.push(
    `<rect x="${left}" y="${Y(Math.min(1, c.threshold + c.margin))}" width="${pw}" height="${Y(Math.max(0, c.threshold - c.margin)) - Y(Math.min(1, c.threshold + c.margin))}" fill="#806000" fill-opacity="0.35"/>`,
  );
  for (const g of [0, 0.25, 0.5, 0.75, 1]) {
    parts.push(`<line x1="${left}" y1="${Y(g)}" x2="${left + pw}" y2="${Y(g)}" stroke="#555" stroke-width="1"/>`);
    parts.push(`<text x="${left - fs * 0.5}" y="${Y(g) + fs * 0.35}" font-size="${fs}" text-anchor="end">${g.toFixed(2)}</text>`);
  }
  parts.push(`<rect class="plot-frame" x="${left}" y="${top}" width="${pw}" height="${ph}" fill="none" stroke="#aaa" stroke-width="1"/>`);
  // x ticks: mm along the slice normal (the dashboard's chart uses the same axis), else slice numbers
  const ticks = usePos
    ? niceTicks(Math.min(x0, xs[n - 1] as number), Math.max(x0, xs[n - 1] as number), 8)
    : niceTicks(1, Math.max(1, n), 8).filter((v) => Number.isInteger(v));
  for (const v of ticks) {
    const x = usePos ? XofMm(v) : X(v - 1);
    if (x < left - 0.5 || x > left + pw + 0.5) continue;
    parts.push(
      `<line x1="${x.toFixed(1)}" y1="${top + ph}" x2="${x.toFixed(1)}" y2="${top + ph + fs * 0.4}" stroke="#aaa" stroke-width="1"/>`,
    );
    parts.push(
      `<text x="${x.toFixed(1)}" y="${top + ph + fs * 1.4}" font-size="${fs * 0.85}" text-anchor="middle">${xmlEscape(usePos ? formatTick(v) : String(v))}</text>`,
    );
  }
  // threshold
  parts.push(
    `<line x1="${left}" y1="${Y(c.threshold)}" x2="${left + pw}" y2="${Y(c.threshold)}" stroke="#ffd000" stroke-width="2" stroke-dasharray="10 6"/>`,
  );
  // curve
  if (n > 0) {
    const pts = c.probabilities.map((p, i) => `${X(i).toFixed(1)},${Y(p).toFixed(1)}`).join(' ');
    parts.push(`<polyline points="${pts}" fill="none" stroke="#3fa9ff" stroke-width="2" stroke-linejoin="round"/>`);
    if (n <= 400)
      parts.push(c.probabilities.map((p, i) => `<circle cx="${X(i).toFixed(1)}" cy="${Y(p).toFixed(1)}" r="2" fill="#3fa9ff"/>`).join(''));
  }
  // key slices, their labels in rows above the plot (row 0 nearest), a leader line where a label moved
  keys.forEach((e, j) => {
    const p = c.probabilities[e.k] as number;
    const lx = layout.x[j] as number;
    const row = layout.row[j] as number;
    const baseline = top - fs * 0.5 - row * rowH;
    parts.push(`<line x1="${e.x}" y1="${top}" x2="${e.x}" y2="${top + ph}" stroke="#ff4040" stroke-width="1" stroke-opacity="0.6"/>`);
    parts.push(`<circle cx="${e.x}" cy="${Y(p)}" r="${Math.round(fs * 0.45)}" fill="none" stroke="#ff4040" stroke-width="2"/>`);
    if (Math.abs(lx - e.x) > 1 || row > 0) {
      parts.push(
        `<line x1="${lx.toFixed(1)}" y1="${(baseline + fs * 0.15).toFixed(1)}" x2="${e.x}" y2="${top}" stroke="#ff8080" stroke-width="1" stroke-opacity="0.7"/>`,
      );
    }
    parts.push(
      `<text class="key-label" x="${lx.toFixed(1)}" y="${baseline.toFixed(1)}" font-size="${(labelFs * layout.fontScale).toFixed(1)}" fill="#ff8080" text-anchor="middle">${xmlEscape(e.label)}</text>`,
    );
  });
  // axes labels
  parts.push(
    `<text x="${left + pw / 2}" y="${top + ph + fs * 2.8}" font-size="${fs}" text-anchor="middle">${usePos ? 'position along the scan (mm along the slice normal, superior on the left)' : 'slice (scored order, superior first)'}</text>`,
  );
  parts.push(
    `<text transform="translate(${fs * 1.3},${top + ph / 2}) rotate(-90)" font-size="${fs}" text-anchor="middle">slice probability</text>`,
  );
  // titles and banner
  parts.push(`<text x="${left}" y="${fs * 1.6}" font-size="${fs * 1.3}" font-weight="bold">${xmlEscape(c.title)}</text>`);
  for (const [i, line] of subLines.entries())
    parts.push(`<text class="subtitle" x="${left}" y="${(fs * 3.1 + i * lineH).toFixed(1)}" font-size="${fs}">${xmlEscape(line)}</text>`);
  const legendY = top + ph + fs * 4.2;
  parts.push(
    `<line x1="${left}" y1="${legendY}" x2="${left + fs * 2}" y2="${legendY}" stroke="#3fa9ff" stroke-width="2"/><text x="${left + fs * 2.5}" y="${legendY + fs * 0.35}" font-size="${fs}">slice probability</text>`,
  );
  parts.push(
    `<circle cx="${left + fs * 13}" cy="${legendY}" r="${Math.round(fs * 0.45)}" fill="none" stroke="#ff4040" stroke-width="2"/><text x="${left + fs * 14}" y="${legendY + fs * 0.35}" font-size="${fs}">key slice (label: instance number)</text>`,
  );
  // The threshold and the band are named in the legend, not on the plot, where the label crossed the curve.
  const legend2 = legendY + fs * 1.5;
  const lo = Math.max(0, c.threshold - c.margin).toFixed(2);
  const hi = Math.min(1, c.threshold + c.margin).toFixed(2);
  parts.push(
    `<line x1="${left}" y1="${legend2}" x2="${left + fs * 2}" y2="${legend2}" stroke="#ffd000" stroke-width="2" stroke-dasharray="6 4"/><text class="threshold-label" x="${left + fs * 2.5}" y="${legend2 + fs * 0.35}" font-size="${fs}">threshold ${c.threshold.toFixed(3)}</text>`,
  );
  parts.push(
    `<rect x="${left + fs * 13}" y="${legend2 - fs * 0.45}" width="${fs * 2}" height="${fs * 0.9}" fill="#806000" fill-opacity="0.35"/><text class="band-label" x="${left + fs * 15.5}" y="${legend2 + fs * 0.35}" font-size="${fs}">indeterminate ${lo}-${hi}: below unlikely, above likely</text>`,
  );
  const bannerH = Math.round(fs * 1.9);
  parts.push(`<rect x="0" y="${height - bannerH}" width="${width}" height="${bannerH}" fill="#b00000"/>`);
  parts.push(
    `<text x="${width / 2}" y="${height - bannerH * 0.28}" font-size="${fs * 1.3}" font-weight="bold" text-anchor="middle">${NOT_FOR_DIAGNOSTIC_USE}</text>`,
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}"><g font-family="${FONT}" fill="white">${parts.join('')}</g></svg>`;
}

/** Text in lines of at most `maxWidth` px (DejaVu Sans, about 0.6 em per character on average), broken between words. */
export function wrapWords(text: string, maxWidth: number, fontSize: number): string[] {
  const perLine = Math.max(8, Math.floor(maxWidth / (fontSize * 0.6)));
  const lines: string[] = [];
  let cur = '';
  for (const w of text.split(/\s+/).filter(Boolean)) {
    if (cur && cur.length + 1 + w.length > perLine) {
      lines.push(cur);
      cur = w;
    } else {
      cur = cur ? `${cur} ${w}` : w;
    }
  }
  if (cur) lines.push(cur);
  return lines.length ? lines : [''];
}

/** Width of a chart label in px (DejaVu Sans: about 0.62 em per character, digits and '#'). */
function labelWidth(text: string, fontSize: number): number {
  return text.length * fontSize * 0.62;
}

/**
 * Places labels centred as near as they can be to `want` (their slices' x), inside [lo, hi], with
 * at least `gap` between neighbours in a row: the fewest rows (up to 3) in which they fit, labels
 * dealt to the rows in x order; if even 3 rows cannot hold them, the font shrinks until they do.
 * Returns each label's x and row (in the input order), the rows used and the font scale.
 */
export function layoutLabels(
  want: readonly number[],
  widths: readonly number[],
  lo: number,
  hi: number,
  gap: number,
): { x: number[]; row: number[]; rows: number; fontScale: number } {
  const n = want.length;
  const order = want.map((_, i) => i).sort((a, b) => (want[a] as number) - (want[b] as number));
  const place = (rows: number, scale: number): { x: number[]; row: number[] } | undefined => {
    const x = new Array<number>(n).fill(0);
    const row = new Array<number>(n).fill(0);
    for (let r = 0; r < rows; r++) {
      const ids = order.filter((_, k) => k % rows === r);
      const w = ids.map((i) => (widths[i] as number) * scale);
      const total = w.reduce((s, v) => s + v, 0) + gap * Math.max(0, ids.length - 1);
      if (total > hi - lo) return undefined;
      // Forward: no overlap with the left neighbour, inside lo; backward: inside hi, no overlap on the right.
      const pos = ids.map((i) => want[i] as number);
      for (let k = 0; k < ids.length; k++) {
        const minX = k === 0 ? lo + (w[k] as number) / 2 : (pos[k - 1] as number) + ((w[k - 1] as number) + (w[k] as number)) / 2 + gap;
        pos[k] = Math.max(pos[k] as number, minX);
      }
      for (let k = ids.length - 1; k >= 0; k--) {
        const maxX =
          k === ids.length - 1 ? hi - (w[k] as number) / 2 : (pos[k + 1] as number) - ((w[k] as number) + (w[k + 1] as number)) / 2 - gap;
        pos[k] = Math.min(pos[k] as number, maxX);
      }
      ids.forEach((i, k) => {
        x[i] = pos[k] as number;
        row[i] = r;
      });
    }
    return { x, row };
  };
  for (let scale = 1; scale > 0.3; scale *= 0.85) {
    for (let rows = 1; rows <= 3; rows++) {
      const p = place(rows, scale);
      if (p) return { ...p, rows: n === 0 ? 0 : rows, fontScale: scale };
    }
  }
  return { x: [...want], row: new Array<number>(n).fill(0), rows: 1, fontScale: 0.3 };
}

/** Round tick values (1, 2 or 5 × 10^k apart) covering [lo, hi], about `target` of them. */
function niceTicks(lo: number, hi: number, target: number): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, target);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].find((m) => m * mag >= raw) ?? 10) * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.round(v * 1e6) / 1e6);
  return out;
}

function formatTick(v: number): string {
  return `${Number.isInteger(v) ? v.toFixed(0) : v.toFixed(1)}`;
}

/** Rasterises an SVG to RGB (opaque) at its own size. */
export async function rasterizeSvg(svg: string, width: number, height: number): Promise<RgbImage> {
  const { data, info } = await sharp(Buffer.from(svg))
    .resize(width, height, { fit: 'fill' })
    .flatten({ background: '#000000' })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 || info.width !== width || info.height !== height) {
    throw new Error(`chart rasterised to ${info.width}x${info.height}x${info.channels}`);
  }
  return { width, height, data };
}
