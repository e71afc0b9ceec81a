import { readFileSync } from 'node:fs';
import { LEGACY_UNIT_NAME, type ServiceScope, unitPath } from './identity.js';
import { unitSetting } from './unit.js';

/**
 * Pre-rename `hermes.service` units (reference lifecycle §4.1, `migrate-legacy`). Only that exact
 * name is ever a candidate (so `hermes-gateway*` units are never touched), and only when its
 * `ExecStart` runs a hermes gateway: an unrelated program that happens to be called "hermes" is
 * reported and left alone.
 */

export interface LegacyUnit {
  scope: ServiceScope;
  name: string;
  path: string;
  execStart: string | undefined;
  /** False for a `hermes.service` that does not run a hermes gateway (left alone). */
  isGateway: boolean;
}

export function isLegacyGatewayUnit(text: string): boolean {
  const exec = unitSetting(text, 'ExecStart') ?? '';
  return /hermes/i.test(exec) && /\bgateway\b/.test(exec);
}

export function findLegacyUnits(env: NodeJS.ProcessEnv = process.env): LegacyUnit[] {
  const found: LegacyUnit[] = [];
  for (const scope of ['user', 'system'] as const) {
    const path = unitPath(scope, LEGACY_UNIT_NAME, env);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      continue;
    }
    found.push({
      scope,
      name: LEGACY_UNIT_NAME,
      path,
      execStart: unitSetting(text, 'ExecStart'),
      isGateway: isLegacyGatewayUnit(text),
    });
  }
  return found;
}
