import { readFile, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { parseLabelCsv } from '../contracts/feedback.js';
import { loadConfig } from '../config/load.js';
import { openResultsDb } from '../db/open.js';
import { buildReport } from '../validation/report.js';
import { reportCsv, reportHtml } from '../validation/render.js';

interface StoreFlags {
  spool?: string;
  store?: string;
}

function config(flags: StoreFlags) {
  const overrides: Record<string, Record<string, string>> = {};
  if (flags.spool !== undefined) overrides.spool = { dir: flags.spool };
  if (flags.store !== undefined) overrides.storage = { url: flags.store };
  return loadConfig({ overrides });
}

/** `mlsam validation import labels.csv` and `mlsam validation report`: the local validation from a terminal. */
export function registerValidation(program: Command): void {
  const v = program.command('validation').description('local validation: import reference labels, write the report');
  v.command('import')
    .description(
      'import reference labels (CSV with the header StudyInstanceUID,label; labels covid-pattern, other-opacity, normal, not-assessable) into the results store; the good rows go in one transaction, bad rows are listed by line and make the exit status 1',
    )
    .argument('<file>', 'CSV file')
    .option('--user <name>', 'who the labels come from (audit)', userInfo().username)
    .option('--spool <dir>', 'spool directory (spool.dir; the default store lives there)')
    .option('--store <url>', 'results store (storage.url): sqlite:<file> or postgres://…')
    .action(async (file: string, flags: StoreFlags & { user: string }) => {
      const cfg = config(flags);
      const parsed = parseLabelCsv(await readFile(file, 'utf8'));
      const db = await openResultsDb(cfg);
      try {
        const imported = parsed.rows.length
          ? await db.importLabels(parsed.rows, flags.user, { source: 'cli', file, errors: parsed.errors.length })
          : 0;
        const scored = new Set((await db.latestResults()).map((r) => r.study_instance_uid));
        const waiting = [...new Set(parsed.rows.map((r) => r.studyInstanceUid))].filter((s) => !scored.has(s));
        process.stdout.write(`imported ${imported} label(s) from ${file} into ${db.conn.where}\n`);
        if (waiting.length)
          process.stdout.write(
            `${waiting.length} labelled stud${waiting.length === 1 ? 'y is' : 'ies are'} not scored yet (the label applies once ${waiting.length === 1 ? 'it is' : 'they are'}): ${waiting.slice(0, 10).join(', ')}${waiting.length > 10 ? ', …' : ''}\n`,
          );
        for (const e of parsed.errors) process.stderr.write(`${file}:${e.line}: ${e.error}\n`);
        if (parsed.errors.length) process.exitCode = 1;
      } finally {
        await db.conn.close();
      }
    });
  v.command('report')
    .description('print the local validation report (NOT FOR DIAGNOSTIC USE)')
    .option('--format <format>', 'json, csv or html', 'json')
    .option('--out <file>', 'write to this file instead of stdout')
    .option('--spool <dir>', 'spool directory (spool.dir)')
    .option('--store <url>', 'results store (storage.url)')
    .action(async (flags: StoreFlags & { format: string; out?: string }) => {
      if (!['json', 'csv', 'html'].includes(flags.format))
        throw Object.assign(new Error(`--format: json, csv or html, not ${flags.format}`), { name: 'ConfigError' });
      const db = await openResultsDb(config(flags));
      try {
        const r = buildReport(await db.latestResults(), await db.allFeedback());
        const text = flags.format === 'csv' ? reportCsv(r) : flags.format === 'html' ? reportHtml(r) : `${JSON.stringify(r, null, 2)}\n`;
        if (flags.out) await writeFile(flags.out, text);
        else process.stdout.write(text);
      } finally {
        await db.conn.close();
      }
    });
}
