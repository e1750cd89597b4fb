/**
 * Grayscale Softcopy Presentation States (PS3.3 A.33.1) of the key slices: for PACS viewers that show GSPS but
 * not TID 1500, the CT key slice in the lung window with the measured opacity outlined and a short text.
 * One presentation state per key slice (an overlay in a presentation state applies to every image it
 * references, and each slice has its own outline), all in one PR series.
 *
 * - Softcopy VOI LUT: the lung window; Modality LUT: the slice's own rescale (HU); Presentation LUT IDENTITY.
 * - Overlay 6000: the outline of every opacity region on the slice, one pixel wide, from the slice's lesion
 *   labels, used as a Bitmap Display Shutter whose presentation value is white: the one way of drawing pixels
 *   that every renderer applying presentation states burns in (DCMTK's dcmp2pgm draws shutters but neither
 *   graphic annotations nor activated overlays; measured). It is not also activated on a graphic layer.
 * - Graphic annotations on layer OPACITY: the outline of the largest opacity region (the SR's region) as a
 *   closed POLYLINE; on layer TEXT: the short text (finding, opacity, series result, caution).
 */
import { NOT_FOR_DIAGNOSTIC_USE, setObjectHeader, type NumberedObjectInput, type SourceSlice } from './common.js';
import { encodeElement, formatDs, setFL, setSequence, setString, setUS, tagOf, type Dataset } from './dataset.js';

export const GRAYSCALE_SOFTCOPY_PRESENTATION_STATE = '1.2.840.10008.5.1.4.1.1.11.1';

export interface GspsInput extends NumberedObjectInput {
  /** The CT series and key slice the state applies to. */
  imageSeriesInstanceUid: string;
  image: SourceSlice;
  window: { center: number; width: number };
  /** Lesion labels of the slice (one byte per pixel, non-zero = opacity), when known. */
  lesion?: Uint8Array;
  /** Closed outline of the largest opacity region (image coordinates, flat x, y pairs). */
  polygon?: number[];
  /** Lines of text drawn on the image. */
  text: string[];
}

const LAYER_OPACITY = 'OPACITY';
const LAYER_TEXT = 'TEXT';

function setSL(ds: Dataset, tag: number, ...values: number[]): void {
  const b = Buffer.alloc(values.length * 4);
  for (const [i, v] of values.entries()) b.writeInt32LE(v, i * 4);
  ds.set(tag, encodeElement(tag, 'SL', b));
}

function setSS(ds: Dataset, tag: number, ...values: number[]): void {
  const b = Buffer.alloc(values.length * 2);
  for (const [i, v] of values.entries()) b.writeInt16LE(v, i * 2);
  ds.set(tag, encodeElement(tag, 'SS', b));
}

/** One-pixel outline (4-neighbour boundary) of the non-zero pixels, bit-packed for Overlay Data (LSB first). */
export function outlineBits(lesion: Uint8Array, width: number, height: number): { bits: Buffer; pixels: number } {
  const bits = Buffer.alloc(Math.ceil((width * height) / 16) * 2);
  let pixels = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      if (!lesion[i]) continue;
      const edge =
        x === 0 ||
        y === 0 ||
        x === width - 1 ||
        y === height - 1 ||
        !lesion[i - 1] ||
        !lesion[i + 1] ||
        !lesion[i - width] ||
        !lesion[i + width];
      if (!edge) continue;
      bits[i >> 3] = (bits[i >> 3] as number) | (1 << (i & 7));
      pixels++;
    }
  }
  return { bits, pixels };
}

function imageRef(img: GspsInput['image']): Dataset {
  const r: Dataset = new Map();
  setString(r, tagOf(0x0008, 0x1150), 'UI', img.sopClassUid);
  setString(r, tagOf(0x0008, 0x1155), 'UI', img.sopInstanceUid);
  return r;
}

/** The presentation state dataset (without file meta). */
export function buildGsps(inp: GspsInput): Dataset {
  const { source, model } = inp;
  const columns = inp.image.instance.columns ?? 0;
  const rows = inp.image.instance.rows ?? 0;
  if (!columns || !rows) throw new Error('presentation state: the key slice has no Rows/Columns');
  const ds: Dataset = new Map();
  setObjectHeader(ds, {
    source,
    model,
    sopClassUid: GRAYSCALE_SOFTCOPY_PRESENTATION_STATE,
    sopInstanceUid: inp.sopInstanceUid,
    modality: 'PR',
    seriesInstanceUid: inp.seriesInstanceUid,
    seriesNumber: inp.seriesNumber,
    seriesDescription: 'AI key slices, lung window',
    instanceNumber: inp.instanceNumber,
    aeTitle: inp.aeTitle,
    when: inp.when,
  });
  // General Image's content date/time do not belong to a presentation state: Presentation State Identification instead.
  ds.delete(tagOf(0x0008, 0x0023));
  ds.delete(tagOf(0x0008, 0x0033));
  // Laterality is required (2C) for paired body parts; the source's body part tells that it is not one.
  if (source.bodyPartExamined) setString(ds, tagOf(0x0018, 0x0015), 'CS', source.bodyPartExamined);
  else setString(ds, tagOf(0x0020, 0x0060), 'CS', null);
  setString(ds, tagOf(0x0070, 0x0080), 'CS', 'LUNG_OPACITY');
  setString(ds, tagOf(0x0070, 0x0081), 'LO', `${NOT_FOR_DIAGNOSTIC_USE}: measured opacity, lung window`);
  setString(ds, tagOf(0x0070, 0x0082), 'DA', inp.when.date);
  setString(ds, tagOf(0x0070, 0x0083), 'TM', inp.when.time);
  setString(ds, tagOf(0x0070, 0x0084), 'PN', null);

  // Presentation State Relationship
  const series: Dataset = new Map();
  setSequence(series, tagOf(0x0008, 0x1140), [imageRef(inp.image)]);
  setString(series, tagOf(0x0020, 0x000e), 'UI', inp.imageSeriesInstanceUid);
  setSequence(ds, tagOf(0x0008, 0x1115), [series]);

  // Displayed Area: the whole image, scaled to fit.
  const area: Dataset = new Map();
  setSL(area, tagOf(0x0070, 0x0052), 1, 1);
  setSL(area, tagOf(0x0070, 0x0053), columns, rows);
  setString(area, tagOf(0x0070, 0x0100), 'CS', 'SCALE TO FIT');
  setString(area, tagOf(0x0070, 0x0102), 'IS', ['1', '1']);
  setSequence(ds, tagOf(0x0070, 0x005a), [area]);

  // Modality LUT: the slice's rescale to HU.
  const rescale = inp.image.instance.rescale;
  if (rescale) {
    setString(ds, tagOf(0x0028, 0x1052), 'DS', rescale.intercept);
    setString(ds, tagOf(0x0028, 0x1053), 'DS', rescale.slope);
    setString(ds, tagOf(0x0028, 0x1054), 'LO', rescale.type ?? 'HU');
  }
  // Softcopy VOI LUT: the lung window.
  const voi: Dataset = new Map();
  setString(voi, tagOf(0x0028, 0x1050), 'DS', formatDs(inp.window.center));
  setString(voi, tagOf(0x0028, 0x1051), 'DS', formatDs(inp.window.width));
  setString(voi, tagOf(0x0028, 0x1055), 'LO', 'LUNG');
  setSequence(ds, tagOf(0x0028, 0x3110), [voi]);
  // Softcopy Presentation LUT
  setString(ds, tagOf(0x2050, 0x0020), 'CS', 'IDENTITY');

  // Graphic layers: the outlines, then the text above them.
  const layer = (name: string, order: number, description: string, gray: number, lab: [number, number, number]): Dataset => {
    const l: Dataset = new Map();
    setString(l, tagOf(0x0070, 0x0002), 'CS', name);
    setString(l, tagOf(0x0070, 0x0062), 'IS', String(order));
    setUS(l, tagOf(0x0070, 0x0066), gray);
    setUS(l, tagOf(0x0070, 0x0401), ...lab);
    setString(l, tagOf(0x0070, 0x0068), 'LO', description);
    return l;
  };
  setSequence(ds, tagOf(0x0070, 0x0060), [
    layer(LAYER_OPACITY, 1, 'Measured opacity (ground glass and consolidation) outlines', 0xffff, [58000, 31000, 58000]),
    layer(LAYER_TEXT, 2, `${NOT_FOR_DIAGNOSTIC_USE}: finding text`, 0xffff, [65535, 32896, 32896]),
  ]);

  // Overlay 6000: every opacity outline on the slice, shown on layer OPACITY.
  if (inp.lesion && inp.lesion.length === columns * rows) {
    const { bits, pixels } = outlineBits(inp.lesion, columns, rows);
    if (pixels > 0) {
      const g = (e: number) => tagOf(0x6000, e);
      setUS(ds, g(0x0010), rows);
      setUS(ds, g(0x0011), columns);
      setString(ds, g(0x0022), 'LO', 'Outline of the measured opacity (ground glass and consolidation)');
      setString(ds, g(0x0040), 'CS', 'G');
      setSS(ds, g(0x0050), 1, 1);
      setUS(ds, g(0x0100), 1);
      setUS(ds, g(0x0102), 0);
      setString(ds, g(0x1500), 'LO', 'AI opacity outline');
      ds.set(g(0x3000), encodeElement(g(0x3000), 'OW', bits, 0x00));
      // Display Shutter + Bitmap Display Shutter: the outline pixels shown white (P-value 0xFFFF).
      setString(ds, tagOf(0x0018, 0x1600), 'CS', 'BITMAP');
      setUS(ds, tagOf(0x0018, 0x1622), 0xffff);
      setUS(ds, tagOf(0x0018, 0x1623), 0x6000);
    }
  }

  // Graphic annotations: the largest region's outline, and the text.
  const annotations: Dataset[] = [];
  const poly = inp.polygon;
  if (poly && poly.length >= 8 && poly.length % 2 === 0) {
    const obj: Dataset = new Map();
    setString(obj, tagOf(0x0070, 0x0005), 'CS', 'PIXEL');
    setUS(obj, tagOf(0x0070, 0x0020), 2);
    setUS(obj, tagOf(0x0070, 0x0021), poly.length / 2);
    setFL(obj, tagOf(0x0070, 0x0022), poly);
    setString(obj, tagOf(0x0070, 0x0023), 'CS', 'POLYLINE');
    setString(obj, tagOf(0x0070, 0x0024), 'CS', 'N');
    const a: Dataset = new Map();
    setSequence(a, tagOf(0x0008, 0x1140), [imageRef(inp.image)]);
    setString(a, tagOf(0x0070, 0x0002), 'CS', LAYER_OPACITY);
    setSequence(a, tagOf(0x0070, 0x0009), [obj]);
    annotations.push(a);
  }
  if (inp.text.length) {
    // A box along the bottom of the image, clear of the corners viewers annotate.
    const lineH = Math.max(12, Math.round(rows / 32));
    const top = rows - lineH * (inp.text.length + 1);
    const t: Dataset = new Map();
    setString(t, tagOf(0x0070, 0x0003), 'CS', 'PIXEL');
    setString(t, tagOf(0x0070, 0x0006), 'ST', inp.text.join('\r\n'));
    setFL(t, tagOf(0x0070, 0x0010), [Math.round(columns * 0.15), top]);
    setFL(t, tagOf(0x0070, 0x0011), [Math.round(columns * 0.85), rows - lineH / 2]);
    setString(t, tagOf(0x0070, 0x0012), 'CS', 'CENTER');
    const a: Dataset = new Map();
    setSequence(a, tagOf(0x0008, 0x1140), [imageRef(inp.image)]);
    setString(a, tagOf(0x0070, 0x0002), 'CS', LAYER_TEXT);
    setSequence(a, tagOf(0x0070, 0x0008), [t]);
    annotations.push(a);
  }
  if (annotations.length) setSequence(ds, tagOf(0x0070, 0x0001), annotations);
  return ds;
}
