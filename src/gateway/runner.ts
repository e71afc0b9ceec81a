import type { Logger } from 'pino';
import { isUsableSecret } from '../auth/index.js';
import { VERSION } from '../cli/version.js';
import { errorMessage } from '../common/errors.js';
import { isLoopbackHost } from '../common/loopback.js';
import { type ActivityInput, ActivityLog } from '../home/activity-log.js';
import type { GatewayConfig } from '../home/config.js';
import { DrainWatcher } from '../home/drain-control.js';
import { conversationsPath, inboxPath, mediaDownloadsPath } from '../home/home.js';
import {
  acquireGatewayLock,
  consumeMarker,
  type GatewayLock,
  IDLE_STOP_MARKER_NAME,
  PLANNED_STOP_MARKER_NAME,
} from '../home/pid-lock.js';
import {
  type RelayIdentityEntry,
  type RuntimeStatusPatch,
  takeTurnStopRequests,
  writeRuntimeStatus,
} from '../home/status-file.js';
import { type CapabilityDescriptor, supportedOps } from '../protocol/index.js';
import { createAgent } from './agents/index.js';
import type { Agent } from './agents/types.js';
import { defaultGatewayId } from './enroll.js';
import { SqliteHistoryStore } from './history.js';
import { resolveIdentityToken } from './identity-token.js';
import { SqliteInbox } from './inbox.js';
import { MediaDownloader } from './media-download.js';
import { connectorMediaUploader } from './media-upload.js';
import { GatewayMetrics, type MetricsListenerSettings, startMetricsListener } from './metrics.js';
import { declarePolicies } from './policy.js';
import { selfProvision } from './provision.js';
import { InboundReceiver } from './receiver.js';
import { type OutboundLink, ReplyChannel } from './replies.js';
import { SessionManager, STOP_COMMAND } from './sessions.js';
import { RelayTransport, type TransportStatus } from './transport.js';

/**
 * `hermes gateway run`: compose the parts, hold the home's lock, keep `gateway_state.json` true,
 * and shut down the reference way (drain running turns up to the timeout, then interrupt).
 */

const EXIT = { ok: 0, failure: 1, restart: 75, config: 78 } as const;
/** `exit_reason` in gateway_state.json per kind of stop. */
const EXIT_REASONS: Record<StopKind, string> = {
  planned: 'shutdown',
  idle: 'idle',
  unexpected: 'signal',
  restart: 'restart',
};

const PLATFORM_KEY = 'relay';
const POST_INTERRUPT_GRACE_MS = 5_000;
/** How often the dashboard's per-turn stop requests are picked up (`.turn-stop-requests/`). */
const TURN_STOP_POLL_MS = 250;
/** While the gateway runs normally, turn boundaries reach `gateway_state.json` at most this often. */
export const ACTIVE_STATUS_COALESCE_MS = 100;

export interface RunGatewayOptions {
  config: GatewayConfig;
  log: Logger;
  replace?: boolean;
  /** Extra delivery key accepted during a rotation (`GATEWAY_RELAY_DELIVERY_KEY_SECONDARY`). */
  secondaryDeliveryKey?: string | undefined;
  /** Resolves with the reason to stop; the CLI wires signals to it. Tests call `stop` instead. */
  signals?: boolean;
  /** Serve `GET /metrics` there (`GATEWAY_METRICS_PORT`/`_HOST`); no listener when unset. */
  metricsListener?: MetricsListenerSettings | undefined;
  /** The version in `hermes_gateway_build_info` (default the package's). */
  version?: string;
}

/** `idle`: a planned stop that scales to zero (`hermes gateway idle`), recorded as such. */
export type StopKind = 'planned' | 'idle' | 'unexpected' | 'restart';

export interface RunningGateway {
  /** Resolves with the exit code once the gateway has stopped. */
  readonly done: Promise<number>;
  readonly inboundUrl: () => string | undefined;
  stop(kind?: StopKind): Promise<number>;
  /** This gateway's Prometheus metrics, and the URL they are served on (when a listener is set). */
  readonly metrics: GatewayMetrics;
  readonly metricsUrl: () => string | undefined;
}

/**
 * The running count and turn list in `gateway_state.json`, written on turn boundaries. Each write
 * is an atomic, fsynced file write (milliseconds on many disks) on the event loop; made on every
 * boundary it sat in the path of every message (twice per turn, before the agent was called) and
 * capped the turns per second. So while the gateway runs normally (the figure is then a readout for
 * the dashboard), a boundary is written just after the message path that made it (the next
 * `setImmediate`, once the agent has been called), and boundaries that follow within `coalesceMs`
 * of a write share one more write at the end of that window, with the count and list as they are
 * then. While the gateway drains or stops, when a controller polls `active_agents == 0` to know the
 * drain is complete (lifecycle reference §1.3–§1.4), every boundary is written at once, as the
 * reference does on every boundary.
 */
export function activeTurnsStatus(options: {
  write: () => void;
  /** True while an external drain or a shutdown is under way. */
  urgent: () => boolean;
  coalesceMs?: number;
}): { changed(): void; cancel(): void } {
  const coalesceMs = options.coalesceMs ?? ACTIVE_STATUS_COALESCE_MS;
  let lastWrite = Number.NEGATIVE_INFINITY;
  let pending: { cancel(): void } | undefined;
  const cancel = () => {
    pending?.cancel();
    pending = undefined;
  };
  const flush = () => {
    cancel();
    lastWrite = performance.now();
    options.write();
  };
  return {
    changed: () => {
      if (options.urgent()) return flush();
      if (pending) return;
      const wait = lastWrite + coalesceMs - performance.now();
      if (wait <= 0) {
        const immediate = setImmediate(flush);
        immediate.unref();
        pending = { cancel: () => clearImmediate(immediate) };
      } else {
        const timer = setTimeout(flush, wait);
        timer.unref();
        pending = { cancel: () => clearTimeout(timer) };
      }
    },
    cancel,
  };
}

/**
 * The activity log's appends (a file open, write and close each, and a rewrite of the file every
 * 200 events), made just after the message path that produced them: on the next `setImmediate`,
 * in order, each with the time it happened. A turn's start is then recorded after its agent was
 * called instead of before. `flush` appends what is queued at once (on stop).
 */
export function deferredActivity(activity: Pick<ActivityLog, 'append'>): {
  append(input: ActivityInput): void;
  flush(): void;
} {
  const queue: { input: ActivityInput; at: number }[] = [];
  let scheduled: NodeJS.Immediate | undefined;
  const flush = () => {
    if (scheduled !== undefined) clearImmediate(scheduled);
    scheduled = undefined;
    for (const { input, at } of queue.splice(0)) activity.append(input, at);
  };
  return {
    append: (input) => {
      queue.push({ input, at: Date.now() });
      scheduled ??= setImmediate(flush);
    },
    flush,
  };
}

export class GatewayStartupError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

export async function startGateway(options: RunGatewayOptions): Promise<RunningGateway> {
  const { config, log } = options;
  const home = config.home;
  const status = (patch: RuntimeStatusPatch) => {
    try {
      writeRuntimeStatus(home, patch);
    } catch (error) {
      log.warn({ err: errorMessage(error) }, 'could not write gateway_state.json');
    }
  };

  let lock: GatewayLock;
  try {
    lock = await acquireGatewayLock(home, { replace: options.replace ?? false, log });
  } catch (error) {
    throw new GatewayStartupError(errorMessage(error), EXIT.failure);
  }

  const fail = (message: string, code: number): never => {
    status({ gatewayState: 'startup_failed', exitReason: message, activeAgents: 0 });
    lock.release();
    throw new GatewayStartupError(message, code);
  };

  status({
    gatewayState: 'starting',
    exitReason: null,
    restartRequested: false,
    activeAgents: 0,
    turns: [],
    relay: null,
  });
  const activity = deferredActivity(
    new ActivityLog(home, (error) =>
      log.warn({ err: errorMessage(error) }, 'could not append to activity.jsonl'),
    ),
  );
  if (config.relayDisabledBy) {
    fail(
      `the relay is turned off: ${config.relayDisabledBy} is false in ${config.configPath} (it overrides GATEWAY_RELAY_URL)`,
      EXIT.config,
    );
  }
  if (!config.relayUrl) {
    fail('no relay configured: set GATEWAY_RELAY_URL (or gateway.relay_url in config.yaml)', EXIT.config);
  }
  const relayUrl = config.relayUrl as string;

  // Credentials live here; managed boot may fill them in memory only (reference §5.2).
  const credentials = {
    gatewayId: config.relayId,
    secret: config.relaySecret,
    deliveryKey: config.deliveryKey,
  };
  // The bearer for provisioning: the identity provider's token when one is configured (current §10.3).
  const identity = await resolveIdentityToken({ idp: config.idp, portalToken: config.portalToken });
  if (!identity.ok && config.idp)
    log.warn({ reason: identity.error }, 'no identity token from the identity provider');
  const provisioned = await selfProvision({
    config: {
      relayUrl,
      gatewayId: config.relayId,
      secret: config.relaySecret,
      managed: config.managed,
      portalToken: identity.ok ? identity.token : undefined,
      platform: config.platform,
      botId: config.botId,
      identities: config.identities,
      instanceId: config.instanceId,
      wakeUrl: config.wakeUrl,
      displayName: config.displayName,
      endpoint: config.endpoint,
      routeKeys: config.routeKeys,
    },
    log,
  });
  if (provisioned.provisioned) {
    credentials.gatewayId = provisioned.gatewayId;
    credentials.secret = provisioned.secret;
    credentials.deliveryKey = provisioned.deliveryKey;
    log.info(
      { gatewayId: provisioned.gatewayId, routeKeys: provisioned.routeKeys.length },
      'self-provisioned relay credentials',
    );
  }
  credentials.gatewayId ??= isUsableSecret(credentials.secret) ? defaultGatewayId() : undefined;
  // Then what each platform declares relevant, before the first dial (fail-soft).
  await declarePolicies({
    relayUrl,
    gatewayId: credentials.gatewayId,
    secret: credentials.secret,
    policies: config.policies,
    log,
  });
  if (!credentials.gatewayId || !isUsableSecret(credentials.secret)) {
    log.warn(
      'no relay credentials (GATEWAY_RELAY_ID/GATEWAY_RELAY_SECRET): dialing unauthenticated; run `hermes gateway enroll` first',
    );
  }

  let agent: Agent;
  let history: SqliteHistoryStore;
  let inbox: SqliteInbox;
  try {
    agent = createAgent(
      {
        kind: config.agent,
        openai: { baseUrl: config.openaiBaseUrl, apiKey: config.openaiApiKey, model: config.model },
        command: config.agentCommand,
      },
      log.child({ part: 'agent' }),
    );
    history = SqliteHistoryStore.open(conversationsPath(home));
    inbox = SqliteInbox.open(inboxPath(home));
  } catch (error) {
    return fail(errorMessage(error), EXIT.config);
  }

  const metrics = new GatewayMetrics({ version: options.version ?? VERSION });
  let metricsListener: Awaited<ReturnType<typeof startMetricsListener>> | undefined;
  if (options.metricsListener) {
    try {
      metricsListener = await startMetricsListener(metrics, options.metricsListener, log);
    } catch (error) {
      agent.close?.().catch(() => undefined);
      history.close();
      inbox.close();
      return fail(
        `metrics listener could not start on ${options.metricsListener.host}:${options.metricsListener.port} (GATEWAY_METRICS_PORT): ${errorMessage(error)}`,
        EXIT.failure,
      );
    }
  }

  let shutdown: 'none' | 'stopping' | 'restarting' = 'none';
  let externalDrain = false;

  // What the dashboard shows of the relay: the identities said hello as, the descriptors adopted.
  const helloIdentities =
    config.identities && config.identities.length > 0
      ? config.identities
      : [{ platform: config.platform, botId: config.botId }];
  const adopted = new Map<string, CapabilityDescriptor>();
  let defaultDescriptor: CapabilityDescriptor | undefined;
  const writeRelayInfo = () => {
    const identities: RelayIdentityEntry[] = helloIdentities.map((identity, index) => {
      // A `relay` hello is answered with the routed platform's descriptor: the first is its own.
      const descriptor = adopted.get(identity.platform) ?? (index === 0 ? defaultDescriptor : undefined);
      return {
        platform: identity.platform,
        bot_id: identity.botId,
        descriptor_platform: descriptor?.platform ?? null,
        label: descriptor?.label ?? null,
        ops: descriptor ? [...supportedOps(descriptor)] : null,
      };
    });
    const june = receiver !== undefined;
    status({
      relay: {
        generation: june ? 'june' : 'current',
        inbound: june ? 'http' : 'socket',
        identities,
        ops: defaultDescriptor ? [...supportedOps(defaultDescriptor)] : [],
        contract_version: defaultDescriptor?.contract_version ?? null,
      },
    });
  };
  let lastRelayState: string | undefined;

  const transport = new RelayTransport({
    url: relayUrl,
    credentials: () => ({ gatewayId: credentials.gatewayId, secret: credentials.secret }),
    platform: config.platform,
    identities: config.identities,
    botId: config.botId,
    commandManifest: [STOP_COMMAND, ...(agent.commands ?? []).filter((command) => command.name !== 'stop')],
    log: log.child({ part: 'transport' }),
    onDescriptor: async (descriptor) => {
      // The first descriptor of a connection is its default (current §4.3).
      defaultDescriptor = transport.descriptor ?? descriptor;
      adopted.set(descriptor.platform, descriptor);
      writeRelayInfo();
      replayInbox();
      await startReceiver();
      writeRelayInfo();
    },
    onInbound: async (event, deliveryId, via) => {
      sessions.handleInbound(event, { deliveryId, followUpKind: via?.followUpKind });
      // Acknowledged only once journaled: the burst's one commit.
      await inbox.committed();
    },
    onInterrupt: (sessionKey) => {
      sessions.interrupt(sessionKey);
    },
    onStatus: (transportStatus: TransportStatus) => {
      metrics.setRelayState(transportStatus.state);
      const connected = transportStatus.state === 'connected';
      if (connected !== (lastRelayState === 'connected') && (connected || lastRelayState !== undefined)) {
        activity.append({
          kind: connected ? 'relay_connected' : 'relay_disconnected',
          platform: PLATFORM_KEY,
          ...(connected ? {} : { detail: transportStatus.errorCode ?? transportStatus.state }),
        });
      }
      lastRelayState = transportStatus.state;
      const state = transportStatus.state === 'stopped' ? 'disabled' : transportStatus.state;
      status({
        platform: {
          name: PLATFORM_KEY,
          state,
          errorCode: transportStatus.errorCode,
          errorMessage: transportStatus.errorMessage,
          needsAttention: transportStatus.state === 'failed',
        },
      });
    },
  });

  // Every op's answer is counted by result on its way back to the replies.
  const link: OutboundLink = {
    get descriptor() {
      return transport.descriptor;
    },
    send: async (action) => {
      const result = await transport.send(action);
      metrics.op(action, result);
      return result;
    },
  };
  const replies = new ReplyChannel(
    link,
    config.platform,
    log.child({ part: 'replies' }),
    connectorMediaUploader({ relayUrl, credentials: () => credentials }),
  );
  const downloader = new MediaDownloader({
    relayUrl,
    credentials: () => credentials,
    dir: mediaDownloadsPath(home),
    log: log.child({ part: 'media' }),
  });
  const sessions = new SessionManager({
    agent,
    history,
    replies,
    log: log.child({ part: 'sessions' }),
    keyOptions: {
      groupSessionsPerUser: config.groupSessionsPerUser,
      threadSessionsPerUser: config.threadSessionsPerUser,
    },
    externalDrainActive: () => externalDrain,
    shutdown: () => shutdown,
    onActiveChange: () => activeTurns.changed(),
    onTurnEvent: (event) => activity.append(event),
    journal: inbox,
    localizeMedia: (event) => downloader.localize(event),
    metrics,
  });
  metrics.sampleSessions(() => ({ active: sessions.activeCount, ...sessions.queueDepth() }));
  const activeTurns = activeTurnsStatus({
    write: () => status({ activeAgents: sessions.activeCount, turns: sessions.turns() }),
    urgent: () => externalDrain || shutdown !== 'none',
  });

  // Work accepted before a crash or restart runs once the relay is back (replies need it).
  let replayed = false;
  const replayInbox = () => {
    if (replayed) return;
    replayed = true;
    const { pending, interrupted } = inbox.recover();
    for (let i = 0; i < interrupted; i++) metrics.finished('cut_by_crash');
    if (interrupted > 0)
      log.warn({ interrupted }, 'turns that were running when the gateway stopped were not re-run');
    if (pending.length > 0)
      log.info({ pending: pending.length }, 'replaying accepted messages from before the restart');
    for (const entry of pending) {
      try {
        sessions.handleInbound(entry.event, {
          internal: true,
          inboxId: entry.id,
          followUpKind: entry.followUpKind,
        });
      } catch (error) {
        log.warn({ err: errorMessage(error) }, 'could not replay an accepted message');
      }
    }
  };

  let receiver: InboundReceiver | undefined;
  let receiverUrl: string | undefined;
  let receiverStarting = false;
  const startReceiver = async () => {
    // Only after a handshake, and only with a delivery key and a port (reference §3.1).
    if (
      receiver ||
      receiverStarting ||
      config.inboundPort === undefined ||
      !isUsableSecret(credentials.deliveryKey)
    )
      return;
    receiverStarting = true;
    const candidate = new InboundReceiver({
      host: config.inboundHost,
      port: config.inboundPort,
      verifyKeys: () => [credentials.deliveryKey, options.secondaryDeliveryKey].filter(isUsableSecret),
      onMessage: async (event, deliveryId) => {
        const disposition = sessions.handleInbound(event, { deliveryId });
        await inbox.committed();
        return disposition;
      },
      onInterrupt: (sessionKey) => {
        sessions.interrupt(sessionKey);
      },
      log: log.child({ part: 'receiver' }),
    });
    try {
      receiverUrl = (await candidate.start()).url;
      receiver = candidate;
      if (isLoopbackHost(config.inboundHost)) log.info({ url: receiverUrl }, 'inbound receiver listening');
      else
        log.warn(
          { url: receiverUrl, host: config.inboundHost },
          'inbound receiver listening beyond this machine (GATEWAY_RELAY_INBOUND_HOST); only signed deliveries are accepted',
        );
      status({
        platform: { name: PLATFORM_KEY, listenerBase: receiverUrl, ingressUrl: config.endpoint || null },
      });
    } catch (error) {
      // Not fatal: the outbound link stays up (reference §3.1).
      log.error({ err: errorMessage(error) }, 'inbound receiver could not start; continuing outbound-only');
      activity.append({ kind: 'error', detail: 'inbound receiver could not start' });
    } finally {
      receiverStarting = false;
    }
  };
  if (config.inboundPort === undefined)
    log.info('no inbound port configured: outbound-only (deliveries arrive over the relay socket)');

  const watcher = new DrainWatcher(
    home,
    (active) => {
      externalDrain = active;
      if (shutdown !== 'none') return; // shutdown wins
      log.info(
        active
          ? 'External drain ENGAGED: refusing new turns'
          : 'External drain released: accepting new turns',
      );
      activity.append({ kind: active ? 'drain_engaged' : 'drain_released' });
      status({ gatewayState: active ? 'draining' : 'running', activeAgents: sessions.activeCount });
    },
    { log: log.child({ part: 'drain' }) },
  );

  // The dashboard's Stop on one turn: the same path as `/stop` in that chat.
  const takeStopRequests = () => {
    let requests: ReturnType<typeof takeTurnStopRequests>;
    try {
      requests = takeTurnStopRequests(home);
    } catch (error) {
      log.warn({ err: errorMessage(error) }, 'could not read turn stop requests');
      return;
    }
    for (const request of requests) {
      const stopped = sessions.stop(request.session);
      log.info({ session: request.session, principal: request.principal, stopped }, 'dashboard stop request');
    }
  };
  // Requests left from before this start are not for this run's turns.
  try {
    takeTurnStopRequests(home, Number.NEGATIVE_INFINITY);
  } catch {
    // Best effort: they go stale anyway.
  }
  const stopPoll = setInterval(takeStopRequests, TURN_STOP_POLL_MS);
  stopPoll.unref();

  transport.start();
  watcher.start();
  activity.append({ kind: 'gateway_started' });
  if (!watcher.active) status({ gatewayState: 'running', activeAgents: 0 });
  log.info({ relay: relayUrl, gatewayId: credentials.gatewayId, agent: agent.name }, 'gateway running');

  let resolveDone: (code: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => {
    resolveDone = resolve;
  });
  let stopping: Promise<number> | undefined;

  const stop = (kind: StopKind = 'planned'): Promise<number> => {
    stopping ??= (async () => {
      shutdown = kind === 'restart' ? 'restarting' : 'stopping';
      const drainMs = Math.max(0, config.restartDrainTimeoutSeconds) * 1000;
      log.info(
        { kind, active: sessions.activeCount, drainSeconds: config.restartDrainTimeoutSeconds },
        'stopping: letting running turns finish',
      );
      status({
        gatewayState: 'draining',
        restartRequested: kind === 'restart',
        activeAgents: sessions.activeCount,
      });
      activity.append({ kind: 'gateway_stopping', detail: EXIT_REASONS[kind] });
      let timedOut = false;
      if (!(await sessions.waitIdle(drainMs))) {
        timedOut = true;
        const interrupted = sessions.interruptAll();
        log.warn({ interrupted }, 'drain timeout reached: interrupting running turns');
        await sessions.waitIdle(POST_INTERRUPT_GRACE_MS);
      }
      watcher.stop();
      clearInterval(stopPoll);
      activeTurns.cancel();
      await receiver?.stop().catch(() => undefined);
      await transport.stop();
      await metricsListener?.close();
      replies.close();
      await agent.close?.().catch(() => undefined);
      history.close();
      inbox.close();
      const code = kind === 'restart' ? EXIT.restart : kind === 'unexpected' ? EXIT.failure : EXIT.ok;
      status({
        gatewayState: 'stopped',
        exitReason: EXIT_REASONS[kind],
        activeAgents: 0,
        turns: [],
        restartRequested: kind === 'restart',
        platform: { name: PLATFORM_KEY, state: 'disabled' },
      });
      activity.flush();
      lock.release();
      log.info({ code, timedOut }, 'gateway stopped');
      resolveDone(code);
      return code;
    })();
    return stopping;
  };

  if (options.signals) {
    // Ctrl-C stops after the running turns; a second one cuts them now (each chat is told, its
    // inbox entry says so); a third exits at once.
    let interrupts = 0;
    process.on('SIGINT', () => {
      interrupts += 1;
      if (interrupts === 1) {
        void stop('planned');
      } else if (interrupts === 2) {
        const cut = sessions.interruptAll();
        log.warn({ cut }, 'second interrupt: cutting the running turns now (their chats are told)');
      } else {
        log.warn('third interrupt: exiting at once');
        process.exit(EXIT.failure);
      }
    });
    process.once('SIGTERM', () => {
      // A planned stop (`hermes gateway stop`) or a `--replace` takeover leaves a marker naming us.
      const idle = consumeMarker(home, IDLE_STOP_MARKER_NAME);
      const planned =
        consumeMarker(home, PLANNED_STOP_MARKER_NAME) || consumeMarker(home, '.gateway-takeover.json');
      void stop(idle ? 'idle' : planned ? 'planned' : 'unexpected');
    });
    process.once('SIGUSR1', () => void stop('restart'));
  }

  return { done, stop, inboundUrl: () => receiverUrl, metrics, metricsUrl: () => metricsListener?.url };
}
