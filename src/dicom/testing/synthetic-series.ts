import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SopClass, TransferSyntax } from '../uids.js';
import { LONG_LENGTH_VRS } from '../encoding.js';

/**
 * Synthetic CT series as Part-10 files written from hand-crafted bytes (explicit or implicit VR
 * little endian, uncompressed): a chest-like phantom (body ellipse, two lungs whose size varies
 * along z, a spine) in HU stored as unsigned 12-bit with RescaleIntercept -1024.
 * Used by tests (src/dicom, src/queue) and by the receive benchmark.
 */
export interface SyntheticSeriesOptions {
  /** Folder the files are written to (created if needed). */
  dir: string;
  /** Number of slices. */
  count: number;
  rows?: number;
  columns?: number;
  studyInstanceUid?: string;
  seriesInstanceUid?: string;
  /** SOP Instance UIDs are `<prefix>.<index+1>`; default a fresh 2.25 UID per series. */
  sopInstanceUidPrefix?: string;
  sopClassUid?: string;
  modality?: string;
  /** "" leaves BodyPartExamined out. */
  bodyPartExamined?: string;
  imageType?: string[];
  seriesNumber?: number;
  /** First InstanceNumber (default 1). */
  firstInstanceNumber?: number;
  sliceThickness?: number;
  /** z of the first slice in mm; slices go along +z (or -z with a negative spacing). */
  zStart?: number;
  sliceSpacing?: number;
  pixelSpacing?: number;
  /** Direction cosines; default axial [1,0,0,0,1,0]. */
  imageOrientationPatient?: number[];
  transferSyntaxUid?: typeof TransferSyntax.ExplicitVRLittleEndian | typeof TransferSyntax.ImplicitVRLittleEndian;
  patientName?: string;
  patientId?: string;
  seriesDescription?: string;
  /** File name of slice i (default `IM<i+1 zero padded>.dcm`). */
  fileName?: (index: number) => string;
  /** Stored pixel values of slice i (rows × columns, 16-bit LE, HU + 1024); default the phantom. */
  pixels?: (index: number) => Buffer;
}

export interface SyntheticInstance {
  path: string;
  sopInstanceUid: string;
  instanceNumber: number;
  z: number;
}

export interface SyntheticSeries {
  dir: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopClassUid: string;
  transferSyntaxUid: string;
  instances: SyntheticInstance[];
  /** Bytes of one file. */
  fileBytes: number;
}

/** A fresh UID under the 2.25 (UUID-derived) root. */
export function newUid(): string {
  return `2.25.${BigInt(`0x${randomBytes(16).toString('hex')}`).toString()}`;
}

class DatasetBuilder {
  private readonly parts: Buffer[] = [];
  constructor(private readonly explicit: boolean) {}

  add(group: number, element: number, vr: string, value: Buffer): this {
    const long = LONG_LENGTH_VRS.has(vr);
    let header: Buffer;
    if (!this.explicit) {
      header = Buffer.alloc(8);
      header.writeUInt32LE(value.length, 4);
    } else if (long) {
      header = Buffer.alloc(12);
      header.write(vr, 4, 'latin1');
      header.writeUInt32LE(value.length, 8);
    } else {
      header = Buffer.alloc(8);
      header.write(vr, 4, 'latin1');
      header.writeUInt16LE(value.length, 6);
    }
    header.writeUInt16LE(group, 0);
    header.writeUInt16LE(element, 2);
    this.parts.push(header, value);
    return this;
  }

  str(group: number, element: number, vr: string, value: string): this {
    const pad = vr === 'UI' ? '\0' : ' ';
    return this.add(group, element, vr, Buffer.from(value.length % 2 ? value + pad : value, 'latin1'));
  }

  us(group: number, element: number, value: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(value, 0);
    return this.add(group, element, 'US', b);
  }

  build(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function fileMeta(sopClassUid: string, sopInstanceUid: string, ts: string): Buffer {
  const meta = new DatasetBuilder(true)
    .add(0x0002, 0x0001, 'OB', Buffer.from([0, 1]))
    .str(0x0002, 0x0002, 'UI', sopClassUid)
    .str(0x0002, 0x0003, 'UI', sopInstanceUid)
    .str(0x0002, 0x0010, 'UI', ts)
    .str(0x0002, 0x0012, 'UI', '2.25.14727405641991321109304071672327384173')
    .str(0x0002, 0x0013, 'SH', 'MLSAM_SYNTH')
    .build();
  const gl = Buffer.alloc(4);
  gl.writeUInt32LE(meta.length, 0);
  return Buffer.concat([
    Buffer.alloc(128),
    Buffer.from('DICM', 'latin1'),
    new DatasetBuilder(true).add(0x0002, 0x0000, 'UL', gl).build(),
    meta,
  ]);
}

const fmt = (n: number): string => {
  const s = Number.isInteger(n) ? String(n) : n.toFixed(4).replace(/0+$/, '');
  return s.length > 16 ? n.toPrecision(10) : s;
};

/** Phantom slice: stored value = HU + 1024 (0…4095), little-endian 16-bit. */
function phantomSlice(rows: number, cols: number, t: number): Buffer {
  const buf = Buffer.alloc(rows * cols * 2);
  const cx = cols / 2;
  const cy = rows / 2;
  const bodyA = cols * 0.42;
  const bodyB = rows * 0.32;
  // Lungs grow then shrink along the scan (t in 0..1).
  const lungScale = 0.35 + 0.65 * Math.sin(Math.PI * Math.min(Math.max(t, 0), 1));
  const lungA = cols * 0.15 * lungScale;
  const lungB = rows * 0.22 * lungScale;
  const lungDx = cols * 0.2;
  for (let y = 0; y < rows; y++) {
    for (let x = 0; x < cols; x++) {
      const bx = (x - cx) / bodyA;
      const by = (y - cy) / bodyB;
      let hu = -1000;
      if (bx * bx + by * by <= 1) {
        hu = 40;
        const lx1 = (x - (cx - lungDx)) / lungA;
        const lx2 = (x - (cx + lungDx)) / lungA;
        const ly = (y - cy) / lungB;
        if (lx1 * lx1 + ly * ly <= 1 || lx2 * lx2 + ly * ly <= 1) hu = -850 + ((x * 7 + y * 13) % 60);
        const sx = (x - cx) / (cols * 0.04);
        const sy = (y - (cy + rows * 0.22)) / (rows * 0.04);
        if (sx * sx + sy * sy <= 1) hu = 700;
      }
      buf.writeUInt16LE(hu + 1024, (y * cols + x) * 2);
    }
  }
  return buf;
}

/** Writes `count` Part-10 CT files and describes them. */
export async function writeSyntheticSeries(opts: SyntheticSeriesOptions): Promise<SyntheticSeries> {
  const rows = opts.rows ?? 512;
  const cols = opts.columns ?? 512;
  const ts = opts.transferSyntaxUid ?? TransferSyntax.ExplicitVRLittleEndian;
  const explicit = ts === TransferSyntax.ExplicitVRLittleEndian;
  const study = opts.studyInstanceUid ?? newUid();
  const series = opts.seriesInstanceUid ?? newUid();
  const sopPrefix = opts.sopInstanceUidPrefix ?? newUid();
  const sopClassUid = opts.sopClassUid ?? SopClass.CtImageStorage;
  const modality = opts.modality ?? 'CT';
  const bodyPart = opts.bodyPartExamined ?? 'CHEST';
  const imageType = opts.imageType ?? ['ORIGINAL', 'PRIMARY', 'AXIAL'];
  const spacing = opts.sliceSpacing ?? 1.25;
  const thickness = opts.sliceThickness ?? Math.abs(spacing);
  const zStart = opts.zStart ?? -200;
  const px = opts.pixelSpacing ?? 0.7;
  const iop = opts.imageOrientationPatient ?? [1, 0, 0, 0, 1, 0];
  const forUid = `${study}.1`.length <= 64 ? `${study}.1` : newUid();
  const firstNo = opts.firstInstanceNumber ?? 1;
  await mkdir(opts.dir, { recursive: true });

  // Pixel data: a handful of distinct phantom slices reused along the scan keeps generation fast.
  const variants = 16;
  const pixelCache = new Map<number, Buffer>();
  const pixels = (i: number): Buffer => {
    const v = opts.count <= 1 ? 0 : Math.round((i / (opts.count - 1)) * (variants - 1));
    let b = pixelCache.get(v);
    if (!b) {
      b = phantomSlice(rows, cols, v / (variants - 1));
      pixelCache.set(v, b);
    }
    return b;
  };

  const instances: SyntheticInstance[] = [];
  let fileBytes = 0;
  for (let i = 0; i < opts.count; i++) {
    const sop = `${sopPrefix}.${i + 1}`;
    const z = zStart + i * spacing;
    const instanceNumber = firstNo + i;
    const ds = new DatasetBuilder(explicit)
      .str(0x0008, 0x0008, 'CS', imageType.join('\\'))
      .str(0x0008, 0x0016, 'UI', sopClassUid)
      .str(0x0008, 0x0018, 'UI', sop)
      .str(0x0008, 0x0020, 'DA', '20260101')
      .str(0x0008, 0x0030, 'TM', '120000')
      .str(0x0008, 0x0050, 'SH', 'ACC0001')
      .str(0x0008, 0x0060, 'CS', modality)
      .str(0x0008, 0x0070, 'LO', 'MLSAM SYNTHETIC')
      .str(0x0008, 0x103e, 'LO', opts.seriesDescription ?? 'SYNTHETIC CHEST CT')
      .str(0x0010, 0x0010, 'PN', opts.patientName ?? 'SYNTHETIC^PATIENT')
      .str(0x0010, 0x0020, 'LO', opts.patientId ?? 'SYN0001')
      .str(0x0010, 0x0030, 'DA', '19700101')
      .str(0x0010, 0x0040, 'CS', 'O');
    if (bodyPart !== '') ds.str(0x0018, 0x0015, 'CS', bodyPart);
    ds.str(0x0018, 0x0050, 'DS', fmt(thickness))
      .str(0x0020, 0x000d, 'UI', study)
      .str(0x0020, 0x000e, 'UI', series)
      .str(0x0020, 0x0010, 'SH', '1')
      .str(0x0020, 0x0011, 'IS', String(opts.seriesNumber ?? 1))
      .str(0x0020, 0x0013, 'IS', String(instanceNumber))
      .str(0x0020, 0x0032, 'DS', [-(cols * px) / 2, -(rows * px) / 2, z].map(fmt).join('\\'))
      .str(0x0020, 0x0037, 'DS', iop.map(fmt).join('\\'))
      .str(0x0020, 0x0052, 'UI', forUid)
      .str(0x0020, 0x1041, 'DS', fmt(z))
      .us(0x0028, 0x0002, 1)
      .str(0x0028, 0x0004, 'CS', 'MONOCHROME2')
      .us(0x0028, 0x0010, rows)
      .us(0x0028, 0x0011, cols)
      .str(0x0028, 0x0030, 'DS', `${fmt(px)}\\${fmt(px)}`)
      .us(0x0028, 0x0100, 16)
      .us(0x0028, 0x0101, 12)
      .us(0x0028, 0x0102, 11)
      .us(0x0028, 0x0103, 0)
      .str(0x0028, 0x1050, 'DS', '-600')
      .str(0x0028, 0x1051, 'DS', '1500')
      .str(0x0028, 0x1052, 'DS', '-1024')
      .str(0x0028, 0x1053, 'DS', '1')
      .add(0x7fe0, 0x0010, 'OW', opts.pixels ? opts.pixels(i) : pixels(i));
    const bytes = Buffer.concat([fileMeta(sopClassUid, sop, ts), ds.build()]);
    const name = opts.fileName ? opts.fileName(i) : `IM${String(i + 1).padStart(5, '0')}.dcm`;
    const path = join(opts.dir, name);
    await writeFile(path, bytes);
    fileBytes = bytes.length;
    instances.push({ path, sopInstanceUid: sop, instanceNumber, z });
  }
  return {
    dir: opts.dir,
    studyInstanceUid: study,
    seriesInstanceUid: series,
    sopClassUid,
    transferSyntaxUid: ts,
    instances,
    fileBytes,
  };
}
