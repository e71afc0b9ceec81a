import { SESSIONS, startDeliveryRig } from './delivery.js';
import { profileSubject } from './support.js';

/**
 * The `delivery` subject alone, for profiling (issue 20): the connector, its SQLite file, the
 * signed POSTs and the gateway's `InboundReceiver` all run on the main thread. See `profileSubject`.
 *
 *   node dist/bench/profile-delivery.js [seconds=5]
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof dist/bench/profile-delivery.js 4
 */
await profileSubject({
  label: 'delivery',
  sessions: SESSIONS,
  seconds: Number(process.argv[2] ?? 5),
  start: startDeliveryRig,
  tally: (rig) => `${rig.failed} failed`,
});
