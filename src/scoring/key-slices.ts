/**
 * The key-slice pass: a key slice is decoded, analysed and run once more, alone, for what is too big to keep
 * for every slice of a series: its attention map, restricted to the lungs (HU), and where on it the finding
 * is (attention peak; outline of the largest opacity region), in DICOM image coordinates.
 */
import type { KeyRegion } from '../contracts/result-record.js';
import { attentionPeak, centroid, largestOutline, maskAttention, type MaskedAttention } from '../model/regions.js';
import { sliceSize } from '../model/preprocess.js';
import type { ModelSession } from '../model/session.js';
import type { PreparedSlice, PrepareSpec, SlicePreparer, SliceSource } from './slice-preparer.js';

export interface KeySliceDetail {
  /** Attention over `cropBox` of the source image; 0 outside the lungs on HU slices. */
  attention: MaskedAttention;
  /** HU slices: where the finding is. */
  region?: KeyRegion;
}

/**
 * The key slices' details, in the order given. The slices are prepared at once by the preparer (the pool spreads
 * them over its threads; before, each was decoded and analysed in turn on the JS thread while the pool sat idle),
 * then run through the model one at a time, alone (batch of 1), as always.
 */
export async function keySliceDetails(
  session: ModelSession,
  preparer: SlicePreparer,
  slices: readonly { file: string; source: SliceSource }[],
  spec: PrepareSpec,
): Promise<KeySliceDetail[]> {
  const want: PrepareSpec = {
    preprocessing: spec.preprocessing,
    ...(spec.quantification ? { quantification: spec.quantification } : {}),
    keyDetail: true,
  };
  const inputs = slices.map(() => new Float32Array(sliceSize(spec.preprocessing)));
  const prepared = await Promise.all(slices.map((s, i) => preparer.prepare(s.file, s.source, want, inputs[i] as Float32Array, 0)));
  const out: KeySliceDetail[] = [];
  for (const [i, p] of prepared.entries()) out.push(await detailOf(session, p, inputs[i] as Float32Array));
  return out;
}

async function detailOf(session: ModelSession, p: PreparedSlice, input: Float32Array): Promise<KeySliceDetail> {
  const [out] = await session.scorePrepared(input, 1);
  if (!out) throw new Error('key slice: the model returned nothing');
  const { width: W, height: H } = p;
  const att = { width: out.attentionWidth, height: out.attentionHeight, data: out.attention };
  const d = p.detail;
  if (!d) {
    return {
      attention: {
        width: att.width,
        height: att.height,
        data: Array.from(att.data, (v) => Math.round(v * 1000) / 1000),
        imageWidth: W,
        imageHeight: H,
        cropBox: p.cropBox,
      },
    };
  }
  const attention = maskAttention(att, p.cropBox, d.lung, W, H);
  const outline = largestOutline(d.opacity, W, H);
  const peak = attentionPeak(attention) ?? centroid(d.opacity, W, H) ?? centroid(d.lung, W, H);
  if (!peak) return { attention };
  const round = (v: number): number => Math.round(v * 100) / 100;
  const region: KeyRegion = {
    peak: [round(peak[0]), round(peak[1])],
    ...(outline ? { polygon: outline.polygon.map(round), polygonAreaMm2: +(outline.pixels * d.pxMm[0] * d.pxMm[1]).toFixed(1) } : {}),
  };
  return { attention, region };
}
