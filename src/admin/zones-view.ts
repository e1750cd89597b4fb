/**
 * The series page's lung zones: a table (zone, lung volume, opacity, high opacity, extent bin) and a picture
 * of the six zones coloured by their bin, in the radiological view (the patient's right on the left).
 */
import { ZONE_NAMES } from '../model/zones.js';
import type { SeriesZonesRecord } from '../contracts/result-record.js';

const esc = (v: unknown): string =>
  String(v).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');

/** Fill per extent bin 0–5: none grey, then yellow to dark red. */
const BIN_FILL = ['#e5e7eb', '#fde68a', '#fbbf24', '#f97316', '#dc2626', '#7f1d1d'] as const;
const BIN_TEXT = ['none', '< 5 %', '5–25 %', '26–49 %', '50–75 %', '> 75 %'] as const;

function picture(z: SeriesZonesRecord): string {
  const w = 84;
  const h = 46;
  const gap = 14;
  const top = 22;
  const cells = (['right', 'left'] as const).flatMap((side, col) =>
    ZONE_NAMES.map((name, row) => {
      const m = z[side][name];
      const x = 10 + col * (w + gap);
      const y = top + row * (h + 4);
      const dark = m.score >= 4;
      return (
        `<g class="zone" data-side="${side}" data-zone="${name}" data-score="${m.score}"><title>${esc(`${side} ${name}: opacity ${m.percentOpacity.toFixed(1)} %, bin ${m.score}`)}</title>` +
        `<rect x="${x}" y="${y}" width="${w}" height="${h}" rx="${row === 0 ? 18 : 6}" fill="${BIN_FILL[m.score] ?? BIN_FILL[0]}" stroke="#6b7280"/>` +
        `<text x="${x + w / 2}" y="${y + 20}" text-anchor="middle" font-size="13" font-weight="bold" fill="${dark ? '#fff' : '#111'}">${m.score}</text>` +
        `<text x="${x + w / 2}" y="${y + 36}" text-anchor="middle" font-size="11" fill="${dark ? '#fff' : '#111'}">${esc(m.percentOpacity.toFixed(1))} %</text></g>`
      );
    }),
  );
  const width = 20 + 2 * w + gap;
  const height = top + 3 * (h + 4) + 4;
  return (
    `<svg id="zones-picture" xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="Lung zones coloured by extent bin">` +
    `<text x="${10 + w / 2}" y="14" text-anchor="middle" font-size="12">R</text><text x="${10 + w + gap + w / 2}" y="14" text-anchor="middle" font-size="12">L</text>` +
    cells.join('') +
    '</svg>'
  );
}

/** Zone table and picture for a record's zones. */
export function zonesHtml(z: SeriesZonesRecord): string {
  const rows = (['right', 'left'] as const).flatMap((side) =>
    ZONE_NAMES.map((name) => {
      const m = z[side][name];
      return (
        `<tr data-side="${side}" data-zone="${name}"><td>${esc(`${side} ${name}`)}</td><td>${esc(m.lungMl.toFixed(0))}</td><td>${esc(m.percentOpacity.toFixed(1))} %</td>` +
        `<td>${esc(m.percentHighOpacity.toFixed(1))} %</td><td>${esc(m.score)} <span class="muted">(${esc(BIN_TEXT[m.score] ?? '')})</span></td></tr>`
      );
    }),
  );
  return `<h2>Lung zones</h2><div class="zones" style="display:flex;gap:24px;align-items:flex-start;flex-wrap:wrap">
<table id="zones" class="opacity"><thead><tr><th>Zone</th><th>Lung volume (mL)</th><th>Opacity</th><th>High opacity</th><th>Extent bin</th></tr></thead>
<tbody>${rows.join('')}</tbody><tfoot><tr><th>Zone score</th><th></th><th></th><th></th><th id="zone-score">${esc(z.score)} / 30</th></tr></tfoot></table>${picture(z)}</div>
<p class="note">Zones: upper, middle and lower thirds of each lung's craniocaudal extent. Extent bins as in the lobar CT severity score (Pan et al., Radiology 2020: 0 none, 1 &lt; 5 %, 2 5–25 %, 3 26–49 %, 4 50–75 %, 5 &gt; 75 % of the zone opacified), summed over the six zones: a zone score, not the lobar score (the node does not segment lobes).</p>`;
}
