import { describe, expect, it } from 'vitest';
import { FrameDecoder, FrameWriter } from '../../src/protocol/index.js';

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('FrameWriter', () => {
  it('sends the frames of one turn as one message, in order, readable by the decoder', async () => {
    const messages: string[] = [];
    const writer = new FrameWriter((data, done) => {
      messages.push(data);
      done();
    });
    const acks: (Error | undefined)[] = [];
    writer.write({ type: 'hello', platform: 'relay', botId: '' }, (error) => acks.push(error));
    writer.write({ type: 'inbound_ack', bufferId: 'b1' });
    writer.write({ type: 'inbound_ack', bufferId: 'b2' }, (error) => acks.push(error));
    expect(messages).toEqual([]);
    await turn();
    expect(messages).toHaveLength(1);
    expect(new FrameDecoder().push(messages[0] as string).values).toEqual([
      { type: 'hello', platform: 'relay', botId: '' },
      { type: 'inbound_ack', bufferId: 'b1' },
      { type: 'inbound_ack', bufferId: 'b2' },
    ]);
    expect(acks).toEqual([undefined, undefined]);
    writer.write({ type: 'inbound_ack', bufferId: 'b3' });
    await turn();
    expect(messages).toHaveLength(2);
  });

  it('never builds a message over its cap from several frames; one big frame goes alone', async () => {
    const messages: string[] = [];
    const writer = new FrameWriter((data, done) => {
      messages.push(data);
      done();
    }, 1_000);
    for (let i = 0; i < 10; i++)
      writer.write({ type: 'inbound_ack', bufferId: `id-${'x'.repeat(100)}-${i}` });
    writer.write({ type: 'inbound_ack', bufferId: 'y'.repeat(5_000) });
    await turn();
    expect(messages.length).toBeGreaterThan(3);
    for (const message of messages.slice(0, -1))
      expect(Buffer.byteLength(message)).toBeLessThanOrEqual(1_000);
    const decoded = messages.flatMap((m) => new FrameDecoder().push(m).values);
    expect(decoded).toHaveLength(11);
    expect((decoded[10] as { bufferId: string }).bufferId).toHaveLength(5_000);
  });

  it('reports a send failure to every frame of the message, including a throwing sender', async () => {
    const errors: string[] = [];
    const failing = new FrameWriter((_data, done) => done(new Error('not open')));
    failing.write({ type: 'inbound_ack', bufferId: 'a' }, (error) => errors.push(String(error?.message)));
    failing.write({ type: 'inbound_ack', bufferId: 'b' }, (error) => errors.push(String(error?.message)));
    const throwing = new FrameWriter(() => {
      throw new Error('closing');
    });
    throwing.write({ type: 'inbound_ack', bufferId: 'c' }, (error) => errors.push(String(error?.message)));
    await turn();
    expect(errors).toEqual(['not open', 'not open', 'closing']);
  });
});
