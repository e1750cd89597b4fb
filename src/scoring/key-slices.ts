/**
 * The key-slice pass: a key slice is decoded, analysed and run once more, alone, for what is too big to keep
 * for every slice of a series: its attention map, restricted to the lungs (HU), and where on it the finding
 * is (attention peak; outline of the largest opacity region), in DICOM image coordinates.
 */
import type { KeyRegion } from '../contracts/result-record.js';
import { attentionPeak, centroid, largestOutline, maskAttention, type MaskedAttention } from '../model/regions.js';
import { sliceSize } from '../model/preprocess.js';
import type { ModelSession } from '../model/session.js';
import { prepareFull, type PrepareSpec, type SliceSource } from './slice-preparer.js';

export interface KeySliceDetail {
  /** Attention over `cropBox` of the source image; 0 outside the lungs on HU slices. */
  attention: MaskedAttention;
  /** HU slices: where the finding is. */
  region?: KeyRegion;
}

export async function keySliceDetail(session: ModelSession, file: string, source: SliceSource, spec: PrepareSpec): Promise<KeySliceDetail> {
  const input = new Float32Array(sliceSize(spec.preprocessing));
  const p = await prepareFull(file, source, spec, input, 0);
  const [out] = await session.scorePrepared(input, 1);
  if (!out) throw new Error('key slice: the model returned nothing');
  const { width: W, height: H } = p.image;
  const att = { width: out.attentionWidth, height: out.attentionHeight, data: out.attention };
  const a = p.analysis;
  if (!a) {
    return {
      attention: {
        width: att.width,
        height: att.height,
        data: Array.from(att.data, (v) => Math.round(v * 1000) / 1000),
        imageWidth: W,
        imageHeight: H,
        cropBox: p.crop.box,
      },
    };
  }
  const lung = a.segmentation.lung;
  const attention = maskAttention(att, p.crop.box, lung, W, H);
  const outline = largestOutline(a.masks.opacity, W, H);
  const peak = attentionPeak(attention) ?? centroid(a.masks.opacity, W, H) ?? centroid(lung, W, H);
  if (!peak) return { attention };
  const round = (v: number): number => Math.round(v * 100) / 100;
  const region: KeyRegion = {
    peak: [round(peak[0]), round(peak[1])],
    ...(outline
      ? { polygon: outline.polygon.map(round), polygonAreaMm2: +(outline.pixels * a.grid.pxMm[0] * a.grid.pxMm[1]).toFixed(1) }
      : {}),
  };
  return { attention, region };
}
