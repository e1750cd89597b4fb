/**
 * Where the heatmap SC's burned-in text goes (heatmapOverlaySvg, rasterised by sharp as the SC
 * pipeline does): nothing along the top edge or in the corners, where viewers draw their own
 * overlays (OHIF: patient and series top left, window bottom left, image number bottom right) and
 * cine controls (top centre); the text band sits centred above the red banner; no crop box; the
 * text stays legible at the dashboard's 300 px.
 */
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { heatmapFontSize, heatmapOverlaySvg } from '../../src/results/render.js';

/** The longest lines the results stage writes (large series, long category). */
const LINES = [
  'mlsam-mobilenetv2 1.0.0',
  'Slice 123/456, instance 1234, -1234.5 mm',
  'Slice probability 0.933, key 10/10',
  'Series 0.640: indeterminate (thr. 0.537)',
];

async function alpha(
  width: number,
  height: number,
  hasAttention = true,
): Promise<{ a: (x: number, y: number) => number; rgb: (x: number, y: number) => [number, number, number] }> {
  const svg = heatmapOverlaySvg(width, height, { lines: LINES, hasAttention });
  const { data } = await sharp(Buffer.from(svg)).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  return {
    a: (x, y) => data[(y * width + x) * 4 + 3]!,
    rgb: (x, y) => [data[(y * width + x) * 4]!, data[(y * width + x) * 4 + 1]!, data[(y * width + x) * 4 + 2]!],
  };
}

function opaqueIn(a: (x: number, y: number) => number, x0: number, x1: number, y0: number, y1: number): number {
  let n = 0;
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) if (a(x, y) > 0) n++;
  return n;
}

describe('heatmap overlay layout', () => {
  for (const [w, h] of [
    [512, 512],
    [768, 768],
    [1024, 1024],
    [512, 640],
  ] as const) {
    it(`${w}x${h}: nothing in the top quarter or the corners, band centred above the banner`, async () => {
      const { a, rgb } = await alpha(w, h);
      // Top quarter: empty (viewers' top overlays, cine controls).
      expect(opaqueIn(a, 0, w, 0, Math.round(h * 0.25))).toBe(0);
      // The banner: the bottom rows are red across the whole width.
      const bottom = h - 3;
      for (const x of [2, Math.round(w / 2) - 40, w - 3]) {
        const [r, g, b] = rgb(x, bottom);
        expect(a(x, bottom)).toBeGreaterThan(200);
        expect(r).toBeGreaterThan(150);
        expect(g + b).toBeLessThan(60);
      }
      // Find the banner's top edge, then the text band above it: clear of the outer 8 % on both sides.
      let bannerTop = bottom;
      while (bannerTop > 0 && a(2, bannerTop - 1) > 200) bannerTop--;
      const bandRows = Math.round(heatmapFontSize(w) * 1.25 * LINES.length + heatmapFontSize(w));
      const side = Math.round(w * 0.08);
      expect(opaqueIn(a, 0, side, bannerTop - bandRows, bannerTop)).toBe(0);
      expect(opaqueIn(a, w - side, w, bannerTop - bandRows, bannerTop)).toBe(0);
      // ...and it is there, in the middle.
      expect(opaqueIn(a, Math.round(w * 0.3), Math.round(w * 0.7), bannerTop - bandRows, bannerTop)).toBeGreaterThan(0);
    });
  }

  it('draws no crop box, and the text is legible (>= 10 px) when the image is shown 300 px wide', () => {
    for (const w of [512, 768, 1024]) {
      const svg = heatmapOverlaySvg(w, w, { lines: LINES, hasAttention: true });
      expect(svg).not.toContain('stroke-dasharray');
      expect((heatmapFontSize(w) * 300) / w).toBeGreaterThanOrEqual(9.9);
    }
  });

  it('says so when there is no attention map (and draws no legend)', async () => {
    const svg = heatmapOverlaySvg(512, 512, { lines: LINES, hasAttention: false });
    expect(svg).toContain('attention map not available');
    expect(svg).not.toContain('linearGradient');
    const { a } = await alpha(512, 512, false);
    expect(opaqueIn(a, 0, 512, 0, 128)).toBe(0);
  });
});
