/** Re-export of the synthetic CT series generator (it lives in src so the benchmark can use it from dist). */
export * from '../../src/dicom/testing/synthetic-series.js';
