/** The model the node ships: config/default.json's model.path, its metadata beside it. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const config = JSON.parse(readFileSync(path.join(repoRoot, 'config', 'default.json'), 'utf8')) as { model: { path: string } };

export const SHIPPED_MODEL = path.join(repoRoot, config.model.path);
export const SHIPPED_METADATA = SHIPPED_MODEL.replace(/\.onnx$/i, '.json');
export const SHIPPED_VERSION = (JSON.parse(readFileSync(SHIPPED_METADATA, 'utf8')) as { version: string }).version;
