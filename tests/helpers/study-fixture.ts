/**
 * A whole chest CT study as a PACS forwards it, generated from a real series of
 * ../shared/data/covid-ct-md (the thin axial series, as published) by code:
 * - thin:      the real series' slices (2 mm, kernel D40s), unchanged;
 * - thick:     6 mm axial slabs, each the mean HU of three consecutive thin slices (series 5, kernel D40s);
 * - coronal:   coronal reformats resampled from the thin stack (ImageType DERIVED\SECONDARY\REFORMATTED);
 * - localizer: one coronal LOCALIZER image;
 * - dose:      a dose screen as Secondary Capture (not a storage class the node scores).
 * Every derived object carries the real study's Study Instance UID and patient module, so Orthanc and
 * the node see one examination.
 */
import { mkdir, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeDicomFile, readDicomHeaderFile } from '../../src/dicom/decode/index.js';
import { writeSyntheticSeries, type SyntheticSeries } from '../../src/dicom/testing/synthetic-series.js';
import { run } from './dcmtk.js';

export interface StudyFixture {
  studyInstanceUid: string;
  thin: { seriesInstanceUid: string; files: string[] };
  thick: SyntheticSeries;
  coronal: SyntheticSeries;
  localizer: SyntheticSeries;
  dose: SyntheticSeries;
  /** Every file of the study, thin series first. */
  files: string[];
}

/** One attribute's value as dcmdump prints it (undefined when absent). */
async function dcmdumpValue(path: string, tag: string): Promise<string | undefined> {
  const r = await run('dcmdump', ['-q', '+P', tag, path]);
  const m = /\[(.*)\]/.exec(r.stdout);
  return m ? m[1] : undefined;
}

const stored = (hu: ArrayLike<number>): Buffer => {
  const b = Buffer.alloc(hu.length * 2);
  for (let i = 0; i < hu.length; i++) b.writeUInt16LE(Math.max(0, Math.min(4095, Math.round((hu[i] as number) + 1024))), i * 2);
  return b;
};

/** Builds the study under `dir` from `thinFiles` (slices of one real axial series, superior first). */
export async function buildStudyFixture(dir: string, thinFiles: readonly string[]): Promise<StudyFixture> {
  const first = await readDicomHeaderFile(thinFiles[0]!);
  const studyInstanceUid = first.studyInstanceUid!;
  const patientName = (await dcmdumpValue(thinFiles[0]!, '0010,0010')) ?? '';
  const patientId = (await dcmdumpValue(thinFiles[0]!, '0010,0020')) ?? '';
  const thinDir = join(dir, 'thin');
  await mkdir(thinDir, { recursive: true });
  const thin: string[] = [];
  for (const [i, f] of thinFiles.entries()) {
    const to = join(thinDir, `IM${String(i + 1).padStart(4, '0')}.dcm`);
    await copyFile(f, to);
    thin.push(to);
  }
  const decoded = await Promise.all(thinFiles.map((f) => decodeDicomFile(f)));
  const zs = await Promise.all(thinFiles.map(async (f) => (await readDicomHeaderFile(f)).imagePositionPatient![2]!));
  const { width, height } = decoded[0]!.image;
  const px = first.pixelSpacing?.[0] ?? 0.75;
  const common = { studyInstanceUid, patientName, patientId, rows: height, columns: width, pixelSpacing: px };

  // 6 mm slabs: the mean of slices i-1, i, i+1 for every third i.
  const slabs: Buffer[] = [];
  const slabZ: number[] = [];
  for (let i = 1; i + 1 < decoded.length; i += 3) {
    const [a, b, c] = [decoded[i - 1]!, decoded[i]!, decoded[i + 1]!].map((d) => d.image.data);
    const hu = new Float32Array(a!.length);
    for (let k = 0; k < hu.length; k++) hu[k] = (a![k]! + b![k]! + c![k]!) / 3;
    slabs.push(stored(hu));
    slabZ.push(zs[i]!);
  }
  const thick = await writeSyntheticSeries({
    ...common,
    dir: join(dir, 'thick'),
    count: slabs.length,
    seriesNumber: 5,
    seriesDescription: 'ThorRoutine 6.0 D40s',
    sliceThickness: 6,
    zStart: slabZ[0]!,
    sliceSpacing: slabZ.length > 1 ? slabZ[1]! - slabZ[0]! : 6,
    pixels: (i) => slabs[i]!,
  });

  // Coronal reformats: image row = slice (superior first), column = x, at 20 y positions through the chest.
  const nz = decoded.length;
  const coronalRows: number[] = Array.from({ length: 20 }, (_, j) => Math.round(height * (0.3 + (0.4 * j) / 19)));
  const coronal = await writeSyntheticSeries({
    ...common,
    dir: join(dir, 'coronal'),
    count: coronalRows.length,
    rows: nz,
    columns: width,
    seriesNumber: 6,
    seriesDescription: 'Cor MPR 3.0',
    imageType: ['DERIVED', 'SECONDARY', 'REFORMATTED'],
    imageOrientationPatient: [1, 0, 0, 0, 0, -1],
    sliceThickness: 3,
    pixels: (j) => {
      const y = coronalRows[j]!;
      const hu = new Float32Array(nz * width);
      for (let z = 0; z < nz; z++) hu.set(decoded[z]!.image.data.subarray(y * width, (y + 1) * width), z * width);
      return stored(hu);
    },
  });
  const localizer = await writeSyntheticSeries({
    ...common,
    dir: join(dir, 'localizer'),
    count: 1,
    seriesNumber: 1,
    seriesDescription: 'Topogram 0.6 T20f',
    imageType: ['ORIGINAL', 'PRIMARY', 'LOCALIZER'],
    imageOrientationPatient: [1, 0, 0, 0, 0, -1],
  });
  const dose = await writeSyntheticSeries({
    ...common,
    dir: join(dir, 'dose'),
    count: 1,
    rows: 64,
    columns: 64,
    seriesNumber: 501,
    seriesDescription: 'Patient Protocol',
    sopClassUid: '1.2.840.10008.5.1.4.1.1.7',
    imageType: ['DERIVED', 'SECONDARY', 'OTHER'],
  });
  return {
    studyInstanceUid,
    thin: { seriesInstanceUid: first.seriesInstanceUid!, files: thin },
    thick,
    coronal,
    localizer,
    dose,
    files: [...thin, ...[thick, coronal, localizer, dose].flatMap((s) => s.instances.map((i) => i.path))],
  };
}
