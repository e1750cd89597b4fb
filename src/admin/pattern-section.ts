/**
 * The series page's pattern section: the automated pattern description (category after the RSNA consensus, the
 * criteria that decided it, the rule's name and version) and the distribution features behind it, each beside the
 * value a uniform spread over the lung would give. Never a diagnosis (docs/pattern-rule.md).
 */
import type { SeriesPatternRecord } from '../contracts/result-record.js';

const esc = (v: unknown): string =>
  String(v).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
const pct = (x: number): string => `${(100 * x).toFixed(0)} %`;

const WORDS: Record<SeriesPatternRecord['category'], string> = {
  typical: 'typical COVID-19 appearance',
  indeterminate: 'indeterminate COVID-19 appearance',
  atypical: 'atypical COVID-19 appearance',
  'no-opacity': 'no opacity',
};

export function patternSection(p: SeriesPatternRecord): string {
  const f = p.features;
  const row = (label: string, value: string, ref = ''): string =>
    `<tr><td>${esc(label)}</td><td>${esc(value)}</td><td>${esc(ref)}</td></tr>`;
  return `<h2>Opacity pattern (automated description)</h2>
<p id="pattern"><b>${esc(WORDS[p.category])}</b> <span class="muted">rule ${esc(p.rule)}</span>${p.criteria.length ? `: ${esc(p.criteria.join('; '))}` : ''}</p>
<table id="pattern-features" class="opacity"><thead><tr><th>Feature</th><th>Opacity</th><th>Lung (uniform spread)</th></tr></thead><tbody>
${row('opacity', `${f.opacityMl.toFixed(1)} mL, ${f.percentOpacity.toFixed(2)} % of the lungs`)}
${row('ground glass (rest consolidation)', pct(f.groundGlassShare))}
${row('right / left lung', `${f.rightOpacityMl.toFixed(1)} / ${f.leftOpacityMl.toFixed(1)} mL`)}
${row('outer third (periphery)', pct(f.peripheralShare), pct(f.lungPeripheralShare))}
${row('dorsal half', pct(f.dorsalShare), pct(f.lungDorsalShare))}
${row('upper / middle / lower zone', `${pct(f.zoneShare.upper)} / ${pct(f.zoneShare.middle)} / ${pct(f.zoneShare.lower)}`, `${pct(f.lungZoneShare.upper)} / ${pct(f.lungZoneShare.middle)} / ${pct(f.lungZoneShare.lower)}`)}
${row('foci ≥ 1 cm / smaller', `${f.foci} / ${f.smallFoci} (smaller ones hold ${pct(f.smallFociShare)})`)}
${row('largest focus', `${f.largestFocusMl.toFixed(1)} mL (${pct(f.largestFocusShare)})`)}
${row('roundness of foci (1 = disc)', f.roundness === null ? 'n/a' : f.roundness.toFixed(2))}
</tbody></table>
<p class="note">How the measured opacity is distributed, described after the RSNA expert consensus categories (Simpson et al. 2020). An automated description of a measurement, not a diagnosis: it cannot tell what the opacity is. Zones: thirds of each lung's craniocaudal extent; periphery: outer third by in-plane depth from the pleura.</p>`;
}
