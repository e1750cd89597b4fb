/** Secondary Capture Image Storage datasets (8-bit RGB) for the heatmaps and the summary chart. */
import {
  Codes,
  MANUFACTURER,
  patientOrientation,
  setObjectHeader,
  softwareVersion,
  type NumberedObjectInput,
  type SourceSlice,
} from './common.js';
import { setCode, setOB, setSequence, setString, setUS, tagOf, type Dataset } from './dataset.js';
import type { RgbImage } from './render.js';

export const SECONDARY_CAPTURE = '1.2.840.10008.5.1.4.1.1.7';

export interface ScInput extends NumberedObjectInput {
  image: RgbImage;
  /** Heatmap: the slice it shows (Source Image Sequence), its geometry is the source's. */
  sourceSlice?: SourceSlice;
  derivation: string;
  comments: string;
}

export function buildSc(inp: ScInput): Dataset {
  const { source, model, image } = inp;
  if (image.data.length !== image.width * image.height * 3) throw new Error('SC pixel data is not width x height x 3');
  const ds: Dataset = new Map();
  // Modality: the source's (CT), as the SC Equipment module allows for a converted image. OT would
  // make viewers treat the series as a cine loop (OHIF plays OT and US series on their own).
  setObjectHeader(ds, {
    source,
    model,
    sopClassUid: SECONDARY_CAPTURE,
    sopInstanceUid: inp.sopInstanceUid,
    modality: source.modality ?? 'CT',
    seriesInstanceUid: inp.seriesInstanceUid,
    seriesNumber: inp.seriesNumber,
    seriesDescription: 'AI heatmaps',
    instanceNumber: inp.instanceNumber,
    aeTitle: inp.aeTitle,
    when: inp.when,
  });
  // Laterality is required (2C) for paired body parts; copying the source's body part tells that it is not.
  if (source.bodyPartExamined) setString(ds, tagOf(0x0018, 0x0015), 'CS', source.bodyPartExamined);
  else setString(ds, tagOf(0x0020, 0x0060), 'CS', null);
  // SC Equipment
  setString(ds, tagOf(0x0008, 0x0064), 'CS', 'WSD');
  setString(ds, tagOf(0x0018, 0x1016), 'LO', MANUFACTURER);
  setString(ds, tagOf(0x0018, 0x1018), 'LO', MANUFACTURER);
  setString(ds, tagOf(0x0018, 0x1019), 'LO', softwareVersion());
  // General Image + SC Image
  setString(ds, tagOf(0x0020, 0x0020), 'CS', inp.sourceSlice ? patientOrientation(inp.sourceSlice.instance.imageOrientationPatient) : null);
  setString(ds, tagOf(0x0008, 0x0008), 'CS', ['DERIVED', 'SECONDARY']);
  setString(ds, tagOf(0x0008, 0x2111), 'ST', inp.derivation);
  setString(ds, tagOf(0x0020, 0x4000), 'LT', inp.comments);
  setString(ds, tagOf(0x0028, 0x0301), 'CS', 'YES');
  setString(ds, tagOf(0x0028, 0x2110), 'CS', '00');
  setString(ds, tagOf(0x0018, 0x1012), 'DA', inp.when.date);
  setString(ds, tagOf(0x0018, 0x1014), 'TM', inp.when.time);
  if (inp.sourceSlice) {
    const ref: Dataset = new Map();
    setString(ref, tagOf(0x0008, 0x1150), 'UI', inp.sourceSlice.sopClassUid);
    setString(ref, tagOf(0x0008, 0x1155), 'UI', inp.sourceSlice.sopInstanceUid);
    setCode(ref, tagOf(0x0040, 0xa170), Codes.sourceImageForProcessing);
    setSequence(ds, tagOf(0x0008, 0x2112), [ref]);
    // Same pixel grid as the source slice: its spacing holds.
    const geo = inp.sourceSlice.instance;
    if (geo.pixelSpacing && geo.rows === image.height && geo.columns === image.width) {
      setString(ds, tagOf(0x0028, 0x0030), 'DS', geo.pixelSpacing.split('\\'));
    }
  }
  // Image Pixel
  setUS(ds, tagOf(0x0028, 0x0002), 3);
  setString(ds, tagOf(0x0028, 0x0004), 'CS', 'RGB');
  setUS(ds, tagOf(0x0028, 0x0006), 0);
  setUS(ds, tagOf(0x0028, 0x0010), image.height);
  setUS(ds, tagOf(0x0028, 0x0011), image.width);
  setUS(ds, tagOf(0x0028, 0x0100), 8);
  setUS(ds, tagOf(0x0028, 0x0101), 8);
  setUS(ds, tagOf(0x0028, 0x0102), 7);
  setUS(ds, tagOf(0x0028, 0x0103), 0);
  setOB(ds, tagOf(0x7fe0, 0x0010), image.data);
  return ds;
}
