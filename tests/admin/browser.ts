import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { chromium, type Page } from 'playwright-core';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface DashboardCheck {
  /** Text of the series row on the dashboard. */
  rowText: string;
  /** Canvas elements uPlot drew into the chart. */
  chartCanvases: number;
  /** Natural sizes of the heatmap images that loaded. */
  heatmaps: { width: number; height: number }[];
  srText: string;
  consoleErrors: string[];
}

/** A chromium page logged into the dashboard, with the console errors and every URL it requested. */
export interface DashboardPage {
  page: Page;
  consoleErrors: string[];
  requests: string[];
}

/**
 * Debian's chromium (headless, via playwright-core) with the admin's basic-auth credentials (sent
 * with every request: basic auth still works in a browser; the login page is tests/admin/sessions-browser.test.ts):
 * runs `fn` with a fresh page and closes the browser afterwards, whatever happens.
 */
export async function withDashboardPage<T>(credentials: [string, string], fn: (p: DashboardPage) => Promise<T>): Promise<T> {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS, headless: true });
  try {
    const context = await browser.newContext({
      // Basic auth on every request the page makes (httpCredentials would wait for a 401 challenge, but a
      // browser opening a page without credentials is now sent to the login form instead).
      extraHTTPHeaders: { authorization: `Basic ${Buffer.from(`${credentials[0]}:${credentials[1]}`).toString('base64')}` },
      viewport: { width: 1360, height: 900 },
    });
    const page = await context.newPage();
    const consoleErrors: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(e.message));
    page.on('request', (r) => requests.push(r.url()));
    return await fn({ page, consoleErrors, requests });
  } finally {
    await browser.close();
  }
}

/**
 * Opens the dashboard, finds the series row, follows its link, waits for the uPlot chart and the
 * heatmap images, and saves full-page screenshots of both pages.
 */
export async function checkDashboard(opts: {
  port: number;
  credentials: [string, string];
  seriesUid: string;
  screenshot: string;
  listScreenshot?: string;
}): Promise<DashboardCheck> {
  return withDashboardPage(opts.credentials, async ({ page, consoleErrors }) => {
    await page.goto(`http://127.0.0.1:${opts.port}/admin`);
    const row = page.locator(`tr[data-series-uid="${opts.seriesUid}"]`);
    await row.waitFor({ timeout: 10_000 });
    const rowText = (await row.innerText()).replace(/\s+/g, ' ').trim();
    await mkdir(dirname(opts.screenshot), { recursive: true });
    if (opts.listScreenshot) await page.screenshot({ path: opts.listScreenshot, fullPage: true });
    await row.locator('a').first().click();
    await page.waitForURL(`**/admin/series/${opts.seriesUid}`);
    await page.locator('#chart[data-ready="1"] canvas').first().waitFor({ timeout: 10_000 });
    const chartCanvases = await page.locator('#chart canvas').count();
    const imgs = page.locator('img.heatmap');
    // (No DOM types in this project: the page-side code is a string / untyped.)
    // The heatmaps load lazily (below the fold on a long series page): ask for them now, as scrolling would.
    await page.evaluate("document.querySelectorAll('img.heatmap').forEach((i) => { i.loading = 'eager'; })");
    await page.waitForFunction("[...document.querySelectorAll('img.heatmap')].every((i) => i.complete)", null, { timeout: 20_000 });
    const heatmaps = await imgs.evaluateAll((els: unknown[]) =>
      els.map((e) => {
        const img = e as { naturalWidth: number; naturalHeight: number };
        return { width: img.naturalWidth, height: img.naturalHeight };
      }),
    );
    const srText = (
      await page
        .locator('#sr')
        .innerText()
        .catch(() => '')
    ).trim();
    await page.screenshot({ path: opts.screenshot, fullPage: true });
    return { rowText, chartCanvases, heatmaps, srText, consoleErrors };
  });
}
