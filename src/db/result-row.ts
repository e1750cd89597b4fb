/** A result record (src/contracts) plus the series' acquisition attributes → one row of `results`. */
import type { ResultRecord } from '../contracts/result-record.js';
import type { AcquisitionAttributes } from '../dicom/decode/acquisition.js';
import type { NewResultRow } from './tables.js';

export function resultRow(record: ResultRecord, attrs: AcquisitionAttributes | null, now = new Date()): NewResultRow {
  const total = record.opacity?.total;
  const keySlices = record.keySlices.map((k) => ({
    index: k.index,
    sopInstanceUid: k.sopInstanceUid,
    probability: k.probability,
    ...(k.cnnProbability !== undefined ? { cnnProbability: k.cnnProbability } : {}),
    ...(k.opacityPercent !== undefined ? { opacityPercent: k.opacityPercent } : {}),
  }));
  const outputs = (record.outputs ?? []).map((o) => ({
    kind: o.kind,
    sopInstanceUid: o.sopInstanceUid,
    seriesInstanceUid: o.seriesInstanceUid,
  }));
  return {
    study_instance_uid: record.studyInstanceUid,
    series_instance_uid: record.seriesInstanceUid,
    instances_hash: record.instancesHash,
    job_id: record.jobId,
    status: record.status,
    reason: record.reason ?? null,
    model_name: record.model.name,
    model_version: record.model.version,
    score: record.score ?? null,
    category: record.category ?? null,
    threshold: record.threshold ?? null,
    indeterminate_margin: record.indeterminateMargin ?? null,
    cnn_score: record.cnnScore ?? null,
    fusion: record.fusion ?? null,
    instance_count: record.instanceCount,
    opacity_percent: total?.percentOpacity ?? null,
    high_opacity_percent: total?.percentHighOpacity ?? null,
    lung_ml: total?.lungMl ?? null,
    key_slices: JSON.stringify(keySlices),
    outputs: JSON.stringify(outputs),
    manufacturer: attrs?.manufacturer ?? null,
    manufacturer_model: attrs?.manufacturerModel ?? null,
    kernel: attrs?.kernel ?? null,
    slice_thickness_mm: attrs?.sliceThicknessMm ?? record.opacity?.sliceThicknessMm ?? null,
    kvp: attrs?.kvp ?? null,
    contrast: attrs?.contrast ?? null,
    calling_ae_title: record.callingAeTitle,
    started_at: record.startedAt,
    finished_at: record.finishedAt ?? now.toISOString(),
    stored_at: now.toISOString(),
  };
}
