/**
 * The SR on the series page as a radiologist reads a report (issue 26 item 7): its title, the findings
 * with their numbers and units, one section per measurement group, and the free-text comments;
 * references (UIDs, images, coordinates) and the raw DICOM content tree stay behind a toggle.
 */
import type { SrDocument, SrNode } from './dicom-view.js';

const esc = (v: unknown): string =>
  String(v).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);

/** UCUM codes as they are written in a report. */
const UNITS: Record<string, string> = {
  '1': '',
  '%': '%',
  mm2: 'mm²',
  mm3: 'mm³',
  ml: 'mL',
  mL: 'mL',
  mm: 'mm',
  cm: 'cm',
  cm2: 'cm²',
  "[hnsf'U]": 'HU',
};

/** "0.81", "15.0 %", "412 mm²": a NUM value as dicom-view gives it ("15 %", "412 mm2"), its unit written out. */
export function numberWithUnit(value: string): string {
  const m = /^(\S+)(?:\s+(.+))?$/.exec(value.trim());
  if (!m) return value;
  const unit = m[2] === undefined ? '' : (UNITS[m[2]] ?? m[2]);
  return unit ? `${m[1]} ${unit}` : (m[1] as string);
}

/** Value types that are references, not findings: shown only in the raw tree. */
const REFERENCES = new Set(['UIDREF', 'IMAGE', 'COMPOSITE', 'WAVEFORM', 'SCOORD', 'SCOORD3D', 'TCOORD']);
/** Containers that only list references (TID 1600 Image Library). */
const SKIPPED_CONTAINERS = new Set(['Image Library', 'Image Library Group']);

interface Section {
  heading: string;
  rows: Array<[string, string]>;
  notes: string[];
}

function collect(nodes: readonly SrNode[], heading: string, out: Section[]): void {
  const section: Section = { heading, rows: [], notes: [] };
  out.push(section);
  for (const n of nodes) {
    if (REFERENCES.has(n.valueType)) continue;
    if (n.valueType === 'CONTAINER') {
      if (n.name && SKIPPED_CONTAINERS.has(n.name)) continue;
      // A measurement group is named by its tracking identifier ("Key slice 1 of 5, instance 89").
      const id = n.children.find((c) => c.name === 'Tracking Identifier' && c.value)?.value;
      collect(n.children, id ?? n.name ?? 'Section', out);
      continue;
    }
    if (n.value === undefined || n.value === '') continue;
    if (n.name === 'Tracking Identifier') continue;
    if (n.valueType === 'TEXT' && (n.name === 'Comment' || !n.name)) section.notes.push(n.value);
    else section.rows.push([n.name ?? n.valueType, n.valueType === 'NUM' ? numberWithUnit(n.value) : n.value]);
  }
}

/** The readable report (HTML), then the raw content tree in a <details> toggle. */
export function srReportHtml(doc: SrDocument, rawTreeHtml: string): string {
  const sections: Section[] = [];
  collect(doc.content, '', sections);
  const flags = [doc.completionFlag, doc.verificationFlag].filter(Boolean).join(' · ');
  const body = sections
    .filter((s) => s.rows.length || s.notes.length)
    .map(
      (s) =>
        `<section>${s.heading ? `<h4>${esc(s.heading)}</h4>` : ''}${
          s.rows.length ? `<dl class="kv">${s.rows.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('')}</dl>` : ''
        }${s.notes.map((t) => `<p class="sr-note">${esc(t)}</p>`).join('')}</section>`,
    )
    .join('');
  return `<div class="card sr" id="sr"><h3 id="sr-title">${esc(doc.title)}</h3> <span class="muted">${esc(flags)}</span>
${doc.seriesDescription ? `<div class="muted">${esc(doc.seriesDescription)}</div>` : ''}<div id="sr-report">${body}</div>
<details id="sr-raw"><summary>DICOM content tree (raw)</summary><ul>${rawTreeHtml}</ul></details></div>`;
}
