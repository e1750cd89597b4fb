import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { explainIssues, type ConfigSources } from './explain.js';
import { configSchema, type Config } from './schema.js';

/** Thrown for any configuration problem; the message names the offending key. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

/** The checkout (or installed package) root: config/, models/ and dist/ live below it. */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DEFAULT_CONFIG_PATH = join(PROJECT_ROOT, 'config', 'default.json');

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Objects merge key by key; arrays and scalars from `over` replace those in `base`. */
export function deepMerge(base: JsonObject, over: JsonObject): JsonObject {
  const out: JsonObject = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isObject(b) && isObject(v) ? deepMerge(b, v) : v;
  }
  return out;
}

function readJson(path: string): JsonObject {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (!isObject(parsed)) throw new ConfigError(`config file ${path} must hold a JSON object`);
  return parsed;
}

const camel = (s: string): string => s.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/**
 * `MLSAM_<SECTION>__<KEY>` sets `section.key` (double underscore nests, single underscore
 * separates words of a camelCase key): `MLSAM_SERIES__QUIET_PERIOD_SECONDS=5` sets
 * `series.quietPeriodSeconds`. Values are parsed as JSON when they parse, else taken as strings.
 */
export function envOverrides(env: NodeJS.ProcessEnv, sources?: Map<string, string>): JsonObject {
  const out: JsonObject = {};
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('MLSAM_') || name === 'MLSAM_CONFIG' || raw === undefined) continue;
    const path = name.slice('MLSAM_'.length).split('__').map(camel);
    if (path.some((p) => p === '')) throw new ConfigError(`environment variable ${name}: malformed key`);
    sources?.set(path.join('.'), name);
    let value: Json;
    try {
      value = JSON.parse(raw) as Json;
    } catch {
      value = raw;
    }
    let node = out;
    path.forEach((p, i) => {
      if (i === path.length - 1) node[p] = value;
      else {
        const next = node[p];
        if (isObject(next)) node = next;
        else {
          const created: JsonObject = {};
          node[p] = created;
          node = created;
        }
      }
    });
  }
  return out;
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** Extra overrides applied last (CLI flags). */
  overrides?: JsonObject;
  defaultsPath?: string;
}

/** Defaults, deep-merged with the file named by MLSAM_CONFIG, then MLSAM_* variables, then overrides; validated. */
export function loadConfig(opts: LoadOptions = {}): Config {
  const env = opts.env ?? process.env;
  let merged = readJson(opts.defaultsPath ?? DEFAULT_CONFIG_PATH);
  const sources: ConfigSources = { env: new Map() };
  const file = env.MLSAM_CONFIG;
  if (file) {
    const path = isAbsolute(file) ? file : resolve(file);
    const json = readJson(path);
    sources.file = { path, json };
    merged = deepMerge(merged, json);
  }
  merged = deepMerge(merged, envOverrides(env, sources.env));
  if (opts.overrides) merged = deepMerge(merged, opts.overrides);
  const result = configSchema.safeParse(merged);
  if (!result.success) {
    const lines = explainIssues(result.error.issues, configSchema, sources);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  return result.data;
}

/** Resolves a path from the config relative to the working directory. */
export const resolvePath = (p: string): string => (isAbsolute(p) ? p : resolve(p));
