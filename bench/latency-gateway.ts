import { EchoAgent } from '../src/gateway/agents/echo.js';
import type { AgentTurnInput, AgentTurnResult } from '../src/gateway/agents/types.js';
import { SqliteInbox } from '../src/gateway/inbox.js';
import { startGateway } from '../src/gateway/runner.js';
import { loadGatewayConfig } from '../src/home/config.js';
import { silentLog } from './support.js';

/**
 * The `latency` bench's gateway, a child process of the bench: what `hermes gateway run` starts
 * (`startGateway` with this home and environment, the echo agent, signals), plus two observers
 * that tell the bench, over the IPC channel, when a message reached the gateway's inbox and when
 * the echo agent's `run` was called for it. Times are `process.hrtime` (CLOCK_MONOTONIC, one clock
 * for every process of the machine), taken in the path; they are sent in one batch per event-loop
 * turn (`setImmediate`), after the path. Not a module of run.ts: `latency.ts` spawns it.
 */

export type LatencyReport = [kind: 'inbox' | 'turn', text: string, atMs: number][];

const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

let batch: LatencyReport = [];
const report = (kind: 'inbox' | 'turn', text: string): void => {
  if (batch.length === 0)
    setImmediate(() => {
      const sent = batch;
      batch = [];
      process.send?.(sent);
    });
  batch.push([kind, text, nowMs()]);
};

const run = EchoAgent.prototype.run;
EchoAgent.prototype.run = function observedRun(
  this: EchoAgent,
  input: AgentTurnInput,
): Promise<AgentTurnResult> {
  report('turn', input.message.content);
  return run.call(this, input);
};
const accept = SqliteInbox.prototype.accept;
SqliteInbox.prototype.accept = function observedAccept(this: SqliteInbox, ...args) {
  report('inbox', args[2].text);
  return accept.apply(this, args);
};

const home = process.env.HERMES_HOME;
if (!home) throw new Error('HERMES_HOME is not set');
const gateway = await startGateway({ config: loadGatewayConfig({ home, env: process.env }), log: silentLog });
process.on('SIGTERM', () => {
  void gateway.stop('planned').then((code) => process.exit(code));
});
process.on('disconnect', () => {
  void gateway.stop('planned').then((code) => process.exit(code));
});
