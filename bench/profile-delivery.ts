import { readFileSync } from 'node:fs';
import { SESSIONS, startDeliveryRig } from './delivery.js';

/**
 * The `delivery` subject alone, for profiling (issue 20): no baseline, no slices, 64 workers in a
 * closed loop for a warm-up and then a measured period. Prints events/s and the CPU time per event
 * of the main thread (where the connector, its SQLite file, the signed POSTs and the gateway's
 * `InboundReceiver` all run) and of the whole process: on a machine shared with other work, CPU per
 * event moves far less than the rate does, so it is the figure to compare builds with.
 *
 *   node dist/bench/profile-delivery.js [seconds=5]
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof dist/bench/profile-delivery.js 4
 */

/** CPU time of the main thread in µs (Linux: /proc; elsewhere undefined). */
function mainThreadCpuUs(): number | undefined {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime, fields 14 and 15 of stat(5), in clock ticks (100 per second on Linux).
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return undefined;
  }
}

async function closedLoop(rig: Awaited<ReturnType<typeof startDeliveryRig>>, ms: number): Promise<number> {
  const end = performance.now() + ms;
  let done = 0;
  const worker = async (session: number): Promise<void> => {
    while (performance.now() < end) {
      await rig.deliverOne(session);
      done++;
    }
  };
  await Promise.all(Array.from({ length: SESSIONS }, (_, i) => worker(i)));
  return done;
}

async function main(): Promise<void> {
  const seconds = Number(process.argv[2] ?? 5);
  const rig = await startDeliveryRig();
  try {
    await closedLoop(rig, 1_000);
    const cpu0 = process.cpuUsage();
    const main0 = mainThreadCpuUs();
    const t0 = performance.now();
    const events = await closedLoop(rig, seconds * 1_000);
    const elapsed = (performance.now() - t0) / 1_000;
    const cpu = process.cpuUsage(cpu0);
    const main1 = mainThreadCpuUs();
    const mainPerEvent =
      main0 === undefined || main1 === undefined ? '?' : ((main1 - main0) / events).toFixed(1);
    console.log(
      `delivery subject: ${(events / elapsed).toFixed(0)} events/s, CPU per event ${mainPerEvent} µs ` +
        `(main thread), ${((cpu.user + cpu.system) / events).toFixed(1)} µs (process); ` +
        `${events} events, ${rig.failed} failed`,
    );
  } finally {
    await rig.close();
  }
}

await main();
