/** Records seeded with the fields the model work fills in (for tests that must not wait for the pipeline to give them). */
import type { ResultRecord } from '../../src/contracts/result-record.js';

/**
 * The record as the model work fills it (region outlines, opacity burden, CNN-only numbers), for
 * records whose pipeline does not give these yet: every key slice with an attention map gets an
 * outline (a 12-gon of radius 14 px) around its attention peak, clipped to the image, and
 * deterministic opacity figures; the series gets an opacity block. Values derive from the record.
 */
export function seedModelFields(record: ResultRecord, pixelSpacingMm = 0.7): ResultRecord {
  const r = structuredClone(record);
  r.keySlices = r.keySlices.map((k, i) => {
    const att = k.attention;
    if (!att) return k;
    let best = 0;
    att.data.forEach((v, j) => {
      if (v > (att.data[best] ?? 0)) best = j;
    });
    const bw = att.cropBox.x1 - att.cropBox.x0 + 1;
    const bh = att.cropBox.y1 - att.cropBox.y0 + 1;
    const cx = att.cropBox.x0 + (((best % att.width) + 0.5) * bw) / att.width;
    const cy = att.cropBox.y0 + ((Math.floor(best / att.width) + 0.5) * bh) / att.height;
    const rad = 14;
    const pts: number[] = [];
    for (let a = 0; a < 12; a++) {
      const t = (a / 12) * 2 * Math.PI;
      pts.push(
        Math.min(att.imageWidth - 0.5, Math.max(0.5, Math.round((cx + rad * Math.cos(t)) * 2) / 2)),
        Math.min(att.imageHeight - 0.5, Math.max(0.5, Math.round((cy + rad * Math.sin(t) * 0.8) * 2) / 2)),
      );
    }
    pts.push(pts[0]!, pts[1]!);
    let area = 0;
    for (let j = 0; j + 3 < pts.length; j += 2) area += pts[j]! * pts[j + 3]! - pts[j + 2]! * pts[j + 1]!;
    const opacity = Math.round((5 + 30 * k.probability) * 100) / 100;
    return {
      ...k,
      cnnProbability: Math.round(k.probability * 0.9 * 1e4) / 1e4,
      opacityPercent: opacity,
      highOpacityPercent: Math.round((opacity / (4 + i)) * 100) / 100,
      region: {
        peak: [cx, cy],
        polygon: pts,
        polygonAreaMm2: Math.round((Math.abs(area) / 2) * pixelSpacingMm * pixelSpacingMm * 10) / 10,
      },
    };
  });
  const measure = (lungMl: number, pct: number) => ({
    lungMl,
    opacityMl: Math.round(lungMl * pct) / 100,
    highOpacityMl: Math.round(lungMl * pct * 0.2) / 100,
    percentOpacity: pct,
    percentHighOpacity: Math.round(pct * 20) / 100,
  });
  r.cnnScore = Math.round((r.score ?? 0) * 0.95 * 1e4) / 1e4;
  r.fusion = 'cnn+opacity';
  r.opacity = {
    method: 'hu-threshold-v1',
    opacityHu: [-700, -100],
    highOpacityHu: [-100, 100],
    sliceSpacingMm: 5,
    sliceThicknessMm: 5,
    groundGlassOpenMm: 2.7,
    total: measure(4210, 11.4),
    right: measure(2290, 9.8),
    left: measure(1920, 13.3),
  };
  return r;
}
