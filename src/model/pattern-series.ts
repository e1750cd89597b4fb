/**
 * Series distribution features of the opacity from the per-slice summaries of pattern.ts (twin:
 * training/pattern.py `series_features`). Volumes: each slice stands for `sliceSpacingMm` of the series
 * (series-opacity.ts). Sides are the patient's (image left is the patient's right when the row direction runs
 * along +x, as in series-opacity.ts); dorsal is the image-lower half of each lung's rows when the column
 * direction runs along +y (posterior in DICOM's LPS), the upper half otherwise.
 *
 * Foci are 3-D: 2-D components of consecutive slices that share a pixel (same row and column on the same
 * working grid) are one focus (6-connectivity), unless the slices are more than 1.5 × the slice spacing apart
 * (a gap of dropped slices) or lie on grids of different size. A focus counts as a *focus* when it is at least
 * FOCUS_MIN_ML (a sphere of 1 cm: "discrete small nodules" of the consensus are below it), as a small focus otherwise.
 */
import type { SlicePattern } from './pattern.js';
import { lungZones, type Zone } from './zones.js';

/** Volume of a sphere of 10 mm diameter, mL. */
export const FOCUS_MIN_ML = ((Math.PI / 6) * 10 ** 3) / 1000;
/** 2-D components of at least this area (mm², ≈ 8 mm across) carry the series roundness. */
export const ROUNDNESS_MIN_MM2 = 50;

export interface PatternSliceInput {
  pattern: SlicePattern;
  /** mm along the slice normal, scored order (superior first). */
  position: number | null;
}

export interface PatternFeatures {
  opacityMl: number;
  percentOpacity: number;
  /** Ground glass / opacity (1 − consolidation share); 0 without opacity. */
  groundGlassShare: number;
  rightOpacityMl: number;
  leftOpacityMl: number;
  /** The less involved lung's share of the opacity. */
  minorityLungShare: number;
  /** Share of the opacity in the outer third of the lung (2-D depth to the pleura). */
  peripheralShare: number;
  /** The lung's own share in the outer third (what a uniform spread would give). */
  lungPeripheralShare: number;
  /** Share of the opacity in the dorsal half of each lung's rows. */
  dorsalShare: number;
  lungDorsalShare: number;
  /** Share of the opacity in each zone (thirds of each lung's craniocaudal extent, zones.ts). */
  zoneShare: Record<Zone, number>;
  /** The lung volume's share in each zone. */
  lungZoneShare: Record<Zone, number>;
  /** 3-D opacity components of at least FOCUS_MIN_ML. */
  foci: number;
  /** 3-D opacity components below FOCUS_MIN_ML. */
  smallFoci: number;
  /** Share of the opacity in the small foci. */
  smallFociShare: number;
  largestFocusMl: number;
  /** The largest focus's share of the opacity. */
  largestFocusShare: number;
  /** Area-weighted mean roundness of the 2-D components of ≥ ROUNDNESS_MIN_MM2; null when there is none. */
  roundness: number | null;
}

class UnionFind {
  private readonly parent: Int32Array;
  constructor(n: number) {
    this.parent = new Int32Array(n);
    for (let i = 0; i < n; i++) this.parent[i] = i;
  }
  find(x: number): number {
    let r = x;
    while (this.parent[r] !== r) r = this.parent[r] as number;
    while (this.parent[x] !== r) {
      const nx = this.parent[x] as number;
      this.parent[x] = r;
      x = nx;
    }
    return r;
  }
  union(a: number, b: number): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra < rb) this.parent[rb] = ra;
    else if (rb < ra) this.parent[ra] = rb;
  }
}

const share = (part: number, whole: number): number => (whole > 0 ? part / whole : 0);

/**
 * The features of a series. `imageOrientationPatient`: of the series (null: the usual [1,0,0,0,1,0]);
 * `sliceSpacingMm`: the slab each slice stands for.
 */
export function seriesPatternFeatures(
  slices: readonly PatternSliceInput[],
  imageOrientationPatient: readonly number[] | null,
  sliceSpacingMm: number,
): PatternFeatures {
  const imageLeftIsRight = !imageOrientationPatient || (imageOrientationPatient[0] as number) >= 0;
  const lowerIsDorsal = !imageOrientationPatient || (imageOrientationPatient[4] as number) >= 0;
  // image side of each patient lung: [right, left]
  const sideOf: [0 | 1, 0 | 1] = imageLeftIsRight ? [0, 1] : [1, 0];
  const ml = (mm2: number): number => (mm2 * sliceSpacingMm) / 1000;
  // zones per patient lung
  const positions = slices.map((s) => s.position);
  const zones = sideOf.map((side) =>
    lungZones(
      slices.map((s) => s.pattern.lungPx[side] * s.pattern.pxMm2),
      positions,
    ),
  );
  const zoneOp: Record<Zone, number> = { upper: 0, middle: 0, lower: 0 };
  const zoneLung: Record<Zone, number> = { upper: 0, middle: 0, lower: 0 };
  let lung = 0;
  let lungInner = 0;
  let lungPer = 0;
  let lungDorsal = 0;
  let op = 0;
  let high = 0;
  const opSide = [0, 0]; // patient right, left
  let per = 0;
  let dorsal = 0;
  let roundW = 0;
  let roundSum = 0;
  // focus ids: every 2-D component gets one; consecutive slices' overlapping components are joined
  const offsets: number[] = [];
  let total = 0;
  for (const s of slices) {
    offsets.push(total);
    total += s.pattern.foci.length;
  }
  const uf = new UnionFind(total);
  let prevLabels: Int32Array | null = null;
  let prevW = -1;
  let prevH = -1;
  let prevPos: number | null = null;
  slices.forEach((s, k) => {
    const p = s.pattern;
    const a = p.pxMm2;
    for (const [patient, side] of sideOf.entries()) {
      const z = zones[patient]?.[k] as Zone;
      lung += p.lungPx[side] * a;
      lungInner += p.lungInnerPx[side] * a;
      lungPer += p.lungPeripheralPx[side] * a;
      lungDorsal += (lowerIsDorsal ? p.lungLowerHalfPx[side] : p.lungPx[side] - p.lungLowerHalfPx[side]) * a;
      zoneLung[z] += p.lungPx[side] * a;
      let sideOp = 0;
      for (const f of p.foci) sideOp += f.px[side];
      opSide[patient] = (opSide[patient] as number) + sideOp * a;
      zoneOp[z] += sideOp * a;
    }
    for (const f of p.foci) {
      const n = f.px[0] + f.px[1];
      op += n * a;
      high += f.highPx * a;
      per += f.peripheralPx * a;
      dorsal += (lowerIsDorsal ? f.lowerHalfPx : n - f.lowerHalfPx) * a;
      if (n * a >= ROUNDNESS_MIN_MM2) {
        roundW += n * a;
        roundSum += f.roundness * n * a;
      }
    }
    // 3-D linking with the previous slice
    const near = prevPos === null || s.position === null || Math.abs(s.position - prevPos) <= 1.5 * sliceSpacingMm;
    const link = prevLabels !== null && prevW === p.width && prevH === p.height && near;
    const labels: Int32Array = prevLabels && prevW === p.width && prevH === p.height ? prevLabels : new Int32Array(p.width * p.height);
    if (link) {
      p.foci.forEach((f, j) => {
        const id = (offsets[k] as number) + j;
        for (let r = 0; r < f.runs.length; r += 3) {
          const row = (f.runs[r] as number) * p.width;
          for (let x = f.runs[r + 1] as number; x <= (f.runs[r + 2] as number); x++) {
            const q = labels[row + x] as number;
            if (q) uf.union(id, q - 1);
          }
        }
      });
    }
    // this slice's labels (id + 1) replace the previous slice's
    labels.fill(0);
    p.foci.forEach((f, j) => {
      const id = (offsets[k] as number) + j + 1;
      for (let r = 0; r < f.runs.length; r += 3) {
        const row = (f.runs[r] as number) * p.width;
        labels.fill(id, row + (f.runs[r + 1] as number), row + (f.runs[r + 2] as number) + 1);
      }
    });
    prevLabels = labels;
    prevW = p.width;
    prevH = p.height;
    prevPos = s.position;
  });
  const volume = new Map<number, number>();
  slices.forEach((s, k) => {
    s.pattern.foci.forEach((f, j) => {
      const r = uf.find((offsets[k] as number) + j);
      volume.set(r, (volume.get(r) ?? 0) + (f.px[0] + f.px[1]) * s.pattern.pxMm2);
    });
  });
  let foci = 0;
  let smallFoci = 0;
  let smallMm2 = 0;
  let largest = 0;
  for (const v of volume.values()) {
    if (ml(v) >= FOCUS_MIN_ML) foci++;
    else {
      smallFoci++;
      smallMm2 += v;
    }
    if (v > largest) largest = v;
  }
  return {
    opacityMl: ml(op),
    percentOpacity: 100 * share(op, lung),
    groundGlassShare: op > 0 ? 1 - high / op : 0,
    rightOpacityMl: ml(opSide[0] as number),
    leftOpacityMl: ml(opSide[1] as number),
    minorityLungShare: share(Math.min(opSide[0] as number, opSide[1] as number), op),
    peripheralShare: share(per, op),
    lungPeripheralShare: share(lungPer, lungInner),
    dorsalShare: share(dorsal, op),
    lungDorsalShare: share(lungDorsal, lung),
    zoneShare: { upper: share(zoneOp.upper, op), middle: share(zoneOp.middle, op), lower: share(zoneOp.lower, op) },
    lungZoneShare: { upper: share(zoneLung.upper, lung), middle: share(zoneLung.middle, lung), lower: share(zoneLung.lower, lung) },
    foci,
    smallFoci,
    smallFociShare: share(smallMm2, op),
    largestFocusMl: ml(largest),
    largestFocusShare: share(largest, op),
    roundness: roundW > 0 ? roundSum / roundW : null,
  };
}
