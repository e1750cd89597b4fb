/**
 * The drift watch's Prometheus gauges, each read at scrape time from DriftWatch's cached report
 * (one shared computation when it is stale: a scrape queries the store at most once per
 * drift.refreshSeconds). A variable without enough studies has no mlsam_drift_psi / mlsam_drift_ks
 * series (absent, not 0), mlsam_drift_level -1 and mlsam_drift_alarm 0.
 */
import { Gauge, type Registry } from 'prom-client';
import type { DriftLevel, DriftReport } from '../drift/report.js';
import type { DriftWatch } from '../drift/watch.js';

const LEVEL: Record<DriftLevel, number> = { 'not-enough-studies': -1, stable: 0, moderate: 1, shift: 2 };

type Set = (labels: Record<string, string>, value: number) => void;

interface GaugeDef {
  name: string;
  help: string;
  labels: string[];
  fill(r: DriftReport, set: Set): void;
}

const WINDOWS = ['reference', 'current'] as const;

const GAUGES: GaugeDef[] = [
  {
    name: 'mlsam_drift_psi',
    help: 'Population Stability Index of each variable, current window against the reference (bands: < 0.1 stable, 0.1-0.25 moderate, >= 0.25 shift)',
    labels: ['variable'],
    fill: (r, set) => {
      for (const v of r.variables) if (v.psi !== null) set({ variable: v.variable }, v.psi);
    },
  },
  {
    name: 'mlsam_drift_psi_chance_pvalue',
    help: 'Probability of a PSI at least this large by chance alone at these window sizes (chi-square approximation, Yurdakul 2018)',
    labels: ['variable'],
    fill: (r, set) => {
      for (const v of r.variables) if (v.psiPValue !== null) set({ variable: v.variable }, v.psiPValue);
    },
  },
  {
    name: 'mlsam_drift_ks',
    help: 'Two-sample Kolmogorov-Smirnov statistic D of score and opacity, current window against the reference',
    labels: ['variable'],
    fill: (r, set) => {
      for (const v of r.variables) if (v.ks) set({ variable: v.variable }, v.ks.statistic);
    },
  },
  {
    name: 'mlsam_drift_ks_pvalue',
    help: 'Two-sided p-value of the two-sample Kolmogorov-Smirnov test',
    labels: ['variable'],
    fill: (r, set) => {
      for (const v of r.variables) if (v.ks) set({ variable: v.variable }, v.ks.pValue);
    },
  },
  {
    name: 'mlsam_drift_level',
    help: 'PSI band of each variable: 0 stable, 1 moderate, 2 shift, -1 not enough studies',
    labels: ['variable'],
    fill: (r, set) => {
      for (const v of r.variables) set({ variable: v.variable }, LEVEL[v.level]);
    },
  },
  {
    name: 'mlsam_drift_alarm',
    help: 'Drift alarm (1): a variable outside its stable band beyond chance; variable="agreement": the radiologists agreement fell',
    labels: ['variable'],
    fill: (r, set) => {
      for (const v of r.variables) set({ variable: v.variable }, v.alarm ? 1 : 0);
      set({ variable: 'agreement' }, r.agreement.alarm ? 1 : 0);
    },
  },
  {
    name: 'mlsam_drift_window_studies',
    help: 'Studies in each drift window',
    labels: ['window'],
    fill: (r, set) => {
      for (const w of WINDOWS) set({ window: w }, r.windows[w].studies);
    },
  },
  {
    name: 'mlsam_feedback_agreement_rate',
    help: "Share of radiologist answers that agreed with the node's category, by drift window (absent without answers)",
    labels: ['window'],
    fill: (r, set) => {
      for (const w of WINDOWS) if (r.agreement[w].value !== null) set({ window: w }, r.agreement[w].value!);
    },
  },
  {
    name: 'mlsam_feedback_agreement_answers',
    help: 'Radiologist agree/disagree answers by drift window',
    labels: ['window'],
    fill: (r, set) => {
      for (const w of WINDOWS) set({ window: w }, r.agreement[w].n);
    },
  },
  {
    name: 'mlsam_drift_computed_timestamp_seconds',
    help: 'When the drift figures were last computed (Unix time)',
    labels: [],
    fill: (r, set) => set({}, Date.parse(r.generatedAt) / 1000),
  },
];

export function registerDriftGauges(registry: Registry, watch: DriftWatch): void {
  for (const def of GAUGES) {
    new Gauge({
      name: def.name,
      help: def.help,
      labelNames: def.labels,
      registers: [registry],
      async collect() {
        this.reset();
        const r = await watch.report();
        if (r) def.fill(r, (labels, value) => this.set(labels, value));
      },
    });
  }
  new Gauge({
    name: 'mlsam_drift_up',
    help: '1 when the last drift computation could read the results store',
    registers: [registry],
    async collect() {
      const r = await watch.report();
      this.set(r && !watch.lastError ? 1 : 0);
    },
  });
}
