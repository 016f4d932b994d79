// Loads the configuration: defaults from the schema, then the YAML file, then MIRRORFARM_* environment
// variables. Startup fails on the first invalid value, naming its key path and the variable that sets it.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Kind, type TSchema, type TObject } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parse as parseYaml } from 'yaml';
import { ConfigSchema, type Config } from './schema.js';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** `http.tls.cert` -> `MIRRORFARM_HTTP_TLS_CERT`, `baseUrl` -> `MIRRORFARM_BASE_URL`. */
export function envName(path: string[]): string {
  return ['MIRRORFARM', ...path.map((s) => s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase())].join('_');
}

interface Leaf {
  path: string[];
  schema: TSchema;
}

function leaves(schema: TObject, prefix: string[] = []): Leaf[] {
  const out: Leaf[] = [];
  for (const [key, child] of Object.entries(schema.properties)) {
    const path = [...prefix, key];
    if (child[Kind] === 'Object') out.push(...leaves(child as TObject, path));
    else out.push({ path, schema: child });
  }
  return out;
}

function coerce(raw: string, schema: TSchema, name: string): unknown {
  switch (schema[Kind]) {
    case 'Integer':
    case 'Number': {
      if (!/^-?\d+(\.\d+)?$/.test(raw.trim())) throw new ConfigError(`${name}=${JSON.stringify(raw)} is not a number`);
      return Number(raw);
    }
    case 'Boolean':
      if (/^(true|1|yes)$/i.test(raw)) return true;
      if (/^(false|0|no)$/i.test(raw)) return false;
      throw new ConfigError(`${name}=${JSON.stringify(raw)} is not a boolean (use true or false)`);
    default:
      return raw;
  }
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

export interface LoadOptions {
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Values that win over file and environment (used by tests and the demo). */
  overrides?: Record<string, unknown>;
}

export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  let raw: Record<string, unknown> = {};
  if (options.file) {
    let text: string;
    try {
      text = readFileSync(options.file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config file ${options.file}: ${(err as Error).message}`);
    }
    const parsed: unknown = parseYaml(text);
    if (parsed !== null && parsed !== undefined) {
      if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(`config file ${options.file} must hold a YAML mapping`);
      raw = parsed as Record<string, unknown>;
    }
  }
  const config = structuredClone(raw);
  for (const leaf of leaves(ConfigSchema)) {
    const name = envName(leaf.path);
    const value = env[name];
    if (value !== undefined && value !== '') setPath(config, leaf.path, coerce(value, leaf.schema, name));
  }
  for (const [key, value] of Object.entries(options.overrides ?? {})) setPath(config, key.split('.'), value);

  // Value.Default fills in defaults in place; the input is already a private copy, so no shared default
  // object is ever mutated.
  const withDefaults = Value.Default(ConfigSchema, config);
  const first = Value.Errors(ConfigSchema, withDefaults).First();
  if (first) {
    const path = first.path.replace(/^\//, '').split('/').filter(Boolean);
    const key = path.join('.') || '(root)';
    const hint = path.length && leaves(ConfigSchema).some((l) => l.path.join('.') === key) ? ` (environment variable ${envName(path)})` : '';
    throw new ConfigError(`invalid configuration at "${key}"${hint}: ${first.message}`);
  }
  const result = withDefaults as Config;
  result.home = resolve(result.home);
  if (result.mode === 'primary' && (result.http.tls.cert === undefined) !== (result.http.tls.key === undefined)) {
    throw new ConfigError('invalid configuration at "http.tls": set both cert and key (MIRRORFARM_HTTP_TLS_CERT and MIRRORFARM_HTTP_TLS_KEY), or neither');
  }
  if (result.baseUrl) result.baseUrl = result.baseUrl.replace(/\/+$/, '');
  if (result.mode === 'mirror') checkMirrorConfig(result);
  return result;
}

/** A mirror talks to its primary and its clients only over HTTPS; there is no switch to turn that off. */
function checkMirrorConfig(config: Config): void {
  const upstream = config.mirror.upstreamUrl;
  if (!upstream) throw new ConfigError('invalid configuration at "mirror.upstreamUrl" (environment variable MIRRORFARM_MIRROR_UPSTREAM_URL): a mirror needs the https:// URL of its primary');
  if (!upstream.startsWith('https://')) {
    throw new ConfigError(
      `invalid configuration at "mirror.upstreamUrl" (environment variable MIRRORFARM_MIRROR_UPSTREAM_URL): "${upstream}" is not https:// — mirrors reach their primary only over HTTPS with a certificate that validates (MIRROR_UPSTREAM_NOT_HTTPS)`,
    );
  }
  config.mirror.upstreamUrl = upstream.replace(/\/+$/, '');
  if (!config.baseUrl?.startsWith('https://')) {
    throw new ConfigError('invalid configuration at "baseUrl" (environment variable MIRRORFARM_BASE_URL): a mirror needs its own https:// base URL, the address users and the primary reach it at');
  }
}
