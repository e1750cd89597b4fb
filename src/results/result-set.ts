/**
 * What one result set holds with the configured `results.*` switches, in words (the start-up
 * summary says it; src/results/index.ts writeResultObjects writes it).
 */
import type { Config } from '../config/schema.js';

/**
 * "SR, KOS, SEG, 5 heatmap SCs, summary chart SC, GSPS per key slice; one set per study; a not-scored
 * SR says why". The SEG needs an HU series with the opacity measured; the KOS, heatmaps and GSPS
 * need key slices.
 */
export function resultSetDescription(results: Config['results']): string {
  const objects = ['SR'];
  if (results.keyObjectSelection) objects.push('KOS');
  if (results.segmentation) objects.push('SEG');
  if (results.heatmapSlices > 0) objects.push(`${results.heatmapSlices} heatmap SC${results.heatmapSlices > 1 ? 's' : ''}`);
  if (results.summaryImage) objects.push('summary chart SC');
  if (results.presentationStates) objects.push('GSPS per key slice');
  const scope = results.perSeries ? 'one set per series' : 'one set per study';
  const notScored = results.reportNotScored ? 'a not-scored SR says why' : 'nothing when not scored';
  return `${objects.join(', ')}; ${scope}; ${notScored}`;
}
