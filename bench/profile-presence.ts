import { join } from 'node:path';
import { PresenceRecorder } from '../src/connector/admin.js';
import { openStore } from '../src/connector/store/open.js';
import { tempDir } from './support.js';

/**
 * The connector's presence refresh at scale (issue 20, `docs/capacity.md`): one `PresenceRecorder`
 * over a store (a fresh SQLite file, or the Postgres database of a `postgres://` URL; its
 * `platform_state` is written to) with N connected gateways, refreshed three times. Prints how long each refresh
 * took and the longest stretch in which the event loop served nothing (a 1 ms interval timer
 * measures the gaps), which is what every socket on the process waits through.
 *
 *   node dist/bench/profile-presence.js [gateways=19000] [postgres://…]
 */
const gateways = Number(process.argv[2] ?? 19_000);
if (!Number.isInteger(gateways) || gateways < 1) {
  console.error(`usage: profile-presence.js [gateways] (a positive integer, not "${process.argv[2]}")`);
  process.exit(2);
}
const url = process.argv[3];
if (url !== undefined && !/^postgres(ql)?:\/\//.test(url)) {
  console.error(`usage: profile-presence.js [gateways] [postgres://…] (not "${url}")`);
  process.exit(2);
}
const dir = tempDir('presence');
const store = await openStore(url ?? join(dir.path, 'connector.db'));
const ids = Array.from({ length: gateways }, (_, i) => `gw-${i}`);
const recorder = new PresenceRecorder({
  store,
  instanceId: 'bench',
  connectedHere: () => ids,
  onError: (error) => {
    throw error;
  },
});
let longestGap = 0;
let last = performance.now();
const ticker = setInterval(() => {
  const now = performance.now();
  longestGap = Math.max(longestGap, now - last);
  last = now;
}, 1);
try {
  for (let run = 1; run <= 3; run++) {
    longestGap = 0;
    last = performance.now();
    const started = performance.now();
    await recorder.refresh();
    // One more tick, so a gap that ends with the refresh is counted.
    await new Promise((resolve) => setTimeout(resolve, 2));
    console.log(
      `presence refresh ${run}, ${gateways} gateways: ${(performance.now() - started).toFixed(0)} ms, ` +
        `longest event-loop gap ${longestGap.toFixed(1)} ms`,
    );
  }
} finally {
  clearInterval(ticker);
  await recorder.stop();
  await store.close();
  dir.remove();
}
