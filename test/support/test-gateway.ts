import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket from 'ws';
import { mintUpgradeToken, verifyDelivery } from '../../src/auth/index.js';
import {
  type CapabilityDescriptor,
  type ConnectorFrame,
  encodeFrame,
  encodeLine,
  FrameDecoder,
  type OutboundActionInput,
  type OutboundResult,
  parseConnectorFrame,
} from '../../src/protocol/index.js';
import { until } from './poll.js';

/**
 * A minimal gateway for connector tests, built only from the protocol core: a signed-delivery
 * receiver and a relay socket. The real gateway lives in src/gateway.
 */

export interface ReceivedDelivery {
  path: string;
  headers: IncomingMessage['headers'];
  raw: Buffer;
  body: Record<string, unknown>;
}

export class TestReceiver {
  readonly deliveries: ReceivedDelivery[] = [];
  /** Status to answer for the next requests (consumed first to last), then 200. */
  readonly script: number[] = [];
  rejected = 0;
  private server: Server | undefined;
  url = '';

  constructor(private keys: () => string[]) {}

  async start(port = 0): Promise<string> {
    this.server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const raw = Buffer.concat(chunks);
        const verified = verifyDelivery(
          raw,
          request.headers['x-relay-timestamp'],
          request.headers['x-relay-signature'],
          this.keys(),
        );
        if (!verified.ok) {
          this.rejected++;
          response
            .writeHead(401, { 'content-type': 'application/json' })
            .end('{"error":"invalid delivery signature"}');
          return;
        }
        const status = this.script.shift() ?? 200;
        if (status === 200) {
          this.deliveries.push({
            path: request.url ?? '/',
            headers: request.headers,
            raw,
            body: JSON.parse(raw.toString('utf8')),
          });
        }
        response
          .writeHead(status, { 'content-type': 'application/json' })
          .end(status === 200 ? '{"ok":true}' : '{"error":"scripted"}');
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(port, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

export class TestRelayClient {
  ws: WebSocket | undefined;
  descriptor: CapabilityDescriptor | undefined;
  readonly frames: ConnectorFrame[] = [];
  closeCode: number | undefined;
  closeReason = '';
  autoAck = true;
  private readonly waiters = new Map<string, (result: OutboundResult) => void>();
  private counter = 0;

  constructor(
    private readonly relayUrl: string,
    private readonly gatewayId: string,
    private readonly secret: string,
  ) {}

  /** Dial; resolves on open or close (check `closeCode`). `token` overrides the minted one. */
  connect(options: { token?: string | null; ttl?: number; now?: number } = {}): Promise<void> {
    const token =
      options.token === undefined
        ? mintUpgradeToken(this.gatewayId, this.secret, options.ttl ?? 300, options.now)
        : options.token;
    const headers: Record<string, string> = token === null ? {} : { authorization: `Bearer ${token}` };
    const ws = new WebSocket(this.relayUrl, { headers });
    this.ws = ws;
    const decoder = new FrameDecoder();
    ws.on('message', (data: Buffer) => {
      for (const value of decoder.push(data.toString('utf8')).values) {
        const parsed = parseConnectorFrame(value);
        if (parsed.kind !== 'frame') continue;
        const frame = parsed.frame;
        this.frames.push(frame);
        if (frame.type === 'descriptor') this.descriptor = frame.descriptor;
        if (frame.type === 'outbound_result') this.waiters.get(frame.requestId)?.(frame.result);
        if (
          (frame.type === 'inbound' || frame.type === 'passthrough_forward') &&
          this.autoAck &&
          frame.bufferId !== undefined
        ) {
          ws.send(encodeFrame({ type: 'inbound_ack', bufferId: frame.bufferId }));
        }
      }
    });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString('utf8');
        resolve();
      });
      ws.once('unexpected-response', (_request, response) =>
        reject(new Error(`upgrade refused with HTTP ${response.statusCode}`)),
      );
      ws.once('error', () => undefined);
    });
  }

  /** Resolves with the close code once the socket closes. */
  closed(): Promise<number> {
    if (this.closeCode !== undefined || !this.ws) return Promise.resolve(this.closeCode ?? 0);
    return new Promise((resolve) => this.ws?.once('close', (code) => resolve(code)));
  }

  async hello(platform = 'relay', botId = ''): Promise<CapabilityDescriptor> {
    this.send({ type: 'hello', platform, botId });
    return until(() => this.descriptor, 10_000, 'a descriptor');
  }

  send(frame: object): void {
    this.ws?.send(encodeLine(frame));
  }

  /** Several frames in one WebSocket message, as the current reference gateway may send them. */
  sendTogether(...frames: object[]): void {
    this.ws?.send(frames.map((frame) => encodeLine(frame)).join(''));
  }

  op(action: OutboundActionInput | Record<string, unknown>): Promise<OutboundResult> {
    const requestId = `r${++this.counter}${Date.now().toString(16)}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no outbound_result for ${requestId}`)), 10_000);
      this.waiters.set(requestId, (result) => {
        clearTimeout(timer);
        this.waiters.delete(requestId);
        resolve(result);
      });
      this.send({ type: 'outbound', requestId, action });
    });
  }

  close(): void {
    this.ws?.close();
  }
}
