/**
 * Silent mode: which targets (destinations and notifications) results may go to now.
 *
 * The config file gives the initial state (`dispatch.mode`, a target's own `mode`); an admin's
 * switch (release or silence, dashboard or API) is kept in the results store's `settings` table,
 * so it survives restarts, and wins over the file. For one target the first that is set decides:
 *
 *   1. the setting `dispatch.mode:<target>`  (an admin switched this target, or all of them)
 *   2. the target's `mode` in the config file
 *   3. the setting `dispatch.mode`           (an admin switched all targets)
 *   4. `dispatch.mode` in the config file    (default "live")
 *
 * Switching all targets writes 1 for every configured target and 3 (so that a target added to the
 * file later without a `mode` follows the admin's last global switch). To go back to the file's
 * values, delete the rows (`DELETE FROM settings WHERE name LIKE 'dispatch.mode%'`).
 *
 * Read on every dispatch, from the store; the rows last read are copied to Redis, so that while
 * the store is unreachable the last known switch still holds (and the file's values only when
 * nothing was ever read).
 */
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { allTargets, describeTarget, type DispatchTarget } from '../config/dispatch-targets.js';
import type { Config } from '../config/schema.js';
import type { DispatchMode } from '../config/targets.js';
import type { Logger } from '../log.js';
import { Keys } from '../stores/keys.js';
import { throttledWarn, whenReady, withTimeout } from '../stores/redis.js';
import type { AuditEntry, ResultsDb } from './results-db.js';
import type { SettingRow } from './tables.js';

export const GLOBAL_MODE_SETTING = 'dispatch.mode';
export const targetModeSetting = (target: string): string => `${GLOBAL_MODE_SETTING}:${target}`;

export type ModeSource = 'setting' | 'config' | 'global setting' | 'global config';

export interface TargetModeView {
  name: string;
  kind: DispatchTarget['kind'];
  description: string;
  mode: DispatchMode;
  /** Which of the four decided (see the file comment). */
  source: ModeSource;
  changedBy?: string;
  changedAt?: string;
}

export interface DispatchModesView {
  /** The global switch: the admin's last one, else the file's. */
  global: { mode: DispatchMode; source: 'setting' | 'config'; changedBy?: string; changedAt?: string };
  targets: TargetModeView[];
  /** Names of the targets in silent mode. */
  silent: string[];
  /** Where the admin's switches were read: the store, its copy in Redis (store unreachable), or none (file only). */
  readFrom: 'store' | 'redis copy' | 'config only';
  error?: string;
}

/** The view with the results held per target now (the dashboard, GET /api/dispatch/mode). */
export interface DispatchModesWithHeld extends DispatchModesView {
  held: Record<string, number>;
}

/** What releasing one target did with its held results (Dispatcher.releaseHeld). */
export interface ReleaseOutcome {
  target: string;
  /** Queued for sending (through their dispatch job ids: each goes out once). */
  sent: number;
  /** Marked withheld: never sent (sendHeld false). */
  withheld: number;
  /** Held entries whose result was replaced or removed since (nothing to do). */
  skipped: number;
}

/** The admin's switch as the dashboard and the API use it (src/worker/dispatch/silent-mode.ts). */
export interface DispatchSwitch {
  view(): Promise<DispatchModesWithHeld>;
  /** `via`: where the user switched (kept in the audit entry). */
  release(
    by: { name: string; role: string },
    opts: { destination?: string; sendHeld: boolean; via?: 'api' | 'dashboard' },
  ): Promise<{ targets: string[]; released: ReleaseOutcome[] }>;
  silence(by: { name: string; role: string }, opts: { destination?: string; via?: 'api' | 'dashboard' }): Promise<{ targets: string[] }>;
}

const settingRowSchema = z.object({ name: z.string(), value: z.string(), updated_at: z.string(), updated_by: z.string() });
const isMode = (v: string | undefined): v is DispatchMode => v === 'live' || v === 'silent';

/** The modes of every configured target from the config and the settings rows (pure). */
export function resolveModes(config: Config, rows: readonly SettingRow[]): Omit<DispatchModesView, 'readFrom' | 'error'> {
  const byName = new Map(rows.filter((r) => isMode(r.value)).map((r) => [r.name, r]));
  const g = byName.get(GLOBAL_MODE_SETTING);
  const global: DispatchModesView['global'] = g
    ? { mode: g.value as DispatchMode, source: 'setting', changedBy: g.updated_by, changedAt: g.updated_at }
    : { mode: config.dispatch.mode, source: 'config' };
  const targets = allTargets(config).map((t): TargetModeView => {
    const base = { name: t.name, kind: t.kind, description: describeTarget(t) };
    const own = byName.get(targetModeSetting(t.name));
    if (own) return { ...base, mode: own.value as DispatchMode, source: 'setting', changedBy: own.updated_by, changedAt: own.updated_at };
    const fileMode = t.kind === 'notification' ? t.notification.mode : t.dest.mode;
    if (fileMode) return { ...base, mode: fileMode, source: 'config' };
    return g
      ? { ...base, mode: global.mode, source: 'global setting', changedBy: g.updated_by, changedAt: g.updated_at }
      : { ...base, mode: global.mode, source: 'global config' };
  });
  return { global, targets, silent: targets.filter((t) => t.mode === 'silent').map((t) => t.name) };
}

/** What the store handle of the caller offers (StoreHandle.use). */
export interface StoreAccess {
  use<T>(fn: (db: ResultsDb) => Promise<T>): Promise<T>;
}

export interface DispatchModesOptions {
  config: Config;
  logger: Logger;
  /** Command connection (the copy of the settings). */
  redis: Redis;
  store: StoreAccess;
  /** How long a read of the store may take before the copy is used, ms. */
  readTimeoutMs?: number;
}

export class UnknownTargetError extends Error {
  readonly statusCode = 404;
}

export class DispatchModes {
  private readonly keys: Keys;
  private readonly warn: ReturnType<typeof throttledWarn>;

  constructor(private readonly opts: DispatchModesOptions) {
    this.keys = new Keys(opts.config.redis.keyPrefix);
    this.warn = throttledWarn(opts.logger.child({ component: 'dispatch-modes' }));
  }

  /** The admin's switches: from the store (copied to Redis), else the copy, else none. */
  private async rows(): Promise<{ rows: SettingRow[]; readFrom: DispatchModesView['readFrom']; error?: string }> {
    try {
      const rows = await withTimeout(
        this.opts.store.use((db) => db.settingsLike(GLOBAL_MODE_SETTING)),
        this.opts.readTimeoutMs ?? 3_000,
        'settings read',
      );
      await this.opts.redis.set(this.keys.dispatchModes(), JSON.stringify(rows)).catch(() => undefined);
      return { rows, readFrom: 'store' };
    } catch (err) {
      const error = (err as Error).message;
      this.warn({ err: error }, 'dispatch mode: the results store cannot be read; using the last switches read');
      try {
        await whenReady(this.opts.redis, 2_000);
        const raw = await this.opts.redis.get(this.keys.dispatchModes());
        const parsed = z.array(settingRowSchema).safeParse(raw ? JSON.parse(raw) : undefined);
        if (parsed.success) return { rows: parsed.data, readFrom: 'redis copy', error };
      } catch {
        /* no copy either */
      }
      return { rows: [], readFrom: 'config only', error };
    }
  }

  async view(): Promise<DispatchModesView> {
    const { rows, readFrom, error } = await this.rows();
    return { ...resolveModes(this.opts.config, rows), readFrom, ...(error ? { error } : {}) };
  }

  /** The names of the targets in silent mode now (Dispatcher and DispatchWorker ask before every send). */
  async silent(): Promise<string[]> {
    return (await this.view()).silent;
  }

  /** The mode of one target now; an unknown target is "silent" (nothing goes where we cannot tell). */
  async modeOf(target: string): Promise<DispatchMode> {
    return (await this.view()).targets.find((t) => t.name === target)?.mode ?? 'silent';
  }

  /**
   * Switches one target, or every target and the global switch, to `mode`, with one audit entry
   * (action dispatch-release or dispatch-silence, the user and role, `detail`) in the same
   * transaction. Returns the targets switched. Throws UnknownTargetError for a name not configured.
   */
  async set(
    mode: DispatchMode,
    by: { name: string; role: string },
    target?: string,
    detail: Record<string, unknown> = {},
  ): Promise<string[]> {
    const names = allTargets(this.opts.config).map((t) => t.name);
    if (target !== undefined && !names.includes(target))
      throw new UnknownTargetError(`no destination or notification named "${target}" (configured: ${names.join(', ') || 'none'})`);
    const targets = target === undefined ? names : [target];
    const entries = [
      ...(target === undefined ? [{ name: GLOBAL_MODE_SETTING, value: mode }] : []),
      ...targets.map((t) => ({ name: targetModeSetting(t), value: mode })),
    ];
    const audit: AuditEntry = {
      user: by.name,
      action: mode === 'live' ? 'dispatch-release' : 'dispatch-silence',
      detail: { role: by.role, scope: target === undefined ? 'all' : 'target', targets, ...detail },
    };
    await this.opts.store.use((db) => db.setSettings(entries, audit));
    // Refresh the copy at once (a later read does too).
    await this.rows();
    return targets;
  }
}
