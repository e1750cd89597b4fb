import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { resultSetDescription } from '../../src/results/result-set.js';

/** The start-up summary's "Results" line lists what a result set holds with the configured switches. */
describe('result set description', () => {
  const results = loadConfig({ env: {} }).results;

  it('lists every object of the default configuration, one set per study', () => {
    expect(resultSetDescription(results)).toBe(
      'SR, KOS, SEG, 5 heatmap SCs, summary chart SC, GSPS per key slice; one set per study; a not-scored SR says why',
    );
  });

  it('leaves out what is switched off and says when every series gets its own set', () => {
    expect(
      resultSetDescription({
        ...results,
        keyObjectSelection: false,
        segmentation: false,
        heatmapSlices: 1,
        summaryImage: false,
        presentationStates: false,
        perSeries: true,
        reportNotScored: false,
      }),
    ).toBe('SR, 1 heatmap SC; one set per series; nothing when not scored');
  });
});
