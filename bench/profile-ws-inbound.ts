import { profileSubject } from './support.js';
import { SESSIONS, startInboundRig } from './ws-inbound.js';

/**
 * The `ws-inbound` subject alone, for profiling (issue 20): the connector, the gateway transport and
 * both SQLite files all run on the main thread. See `profileSubject`.
 *
 *   node dist/bench/profile-ws-inbound.js [seconds=5]
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof dist/bench/profile-ws-inbound.js 4
 */
await profileSubject({
  label: 'ws-inbound',
  sessions: SESSIONS,
  seconds: Number(process.argv[2] ?? 5),
  start: startInboundRig,
  tally: (rig) => `${rig.journaled} journaled, ${rig.failed} failed`,
});
