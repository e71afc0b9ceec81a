import { HANDSHAKE_CONCURRENCY, startHandshakeRig } from './auth.js';
import { profileSubject } from './support.js';

/**
 * The `auth` module's gateway handshake alone, for profiling (issue 20), or with `bare` its
 * baseline alone, so the two can be compared by CPU per handshake. See `profileSubject`.
 *
 *   node dist/bench/profile-handshake.js [seconds=5] [relay|bare]
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof dist/bench/profile-handshake.js 4
 */
const seconds = Number(process.argv[2] ?? 5);
const side = process.argv[3] ?? 'relay';
if (!(seconds > 0) || (side !== 'relay' && side !== 'bare')) {
  console.error(
    `usage: profile-handshake.js [seconds > 0] [relay|bare] (not "${process.argv.slice(2).join(' ')}")`,
  );
  process.exit(2);
}
await profileSubject({
  label: side === 'relay' ? 'handshake' : 'bare ws handshake',
  sessions: HANDSHAKE_CONCURRENCY,
  seconds,
  start: async () => {
    const rig = await startHandshakeRig();
    return { deliverOne: () => (side === 'relay' ? rig.relay() : rig.bare()), close: () => rig.close() };
  },
  tally: () => `${HANDSHAKE_CONCURRENCY} in flight`,
});
