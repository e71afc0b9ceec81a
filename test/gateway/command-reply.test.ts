import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCommandReply } from '../../src/gateway/agents/command-reply.js';
import { tempDir } from '../support/processes.js';

/** A command agent's stdout: plain text, or a `hermes_reply` object with files, a prompt, a reaction. */

const dir = tempDir('command-reply');
afterAll(() => dir.remove());

describe('parseCommandReply', () => {
  it('plain text, JSON without the key, and broken JSON are the reply as printed', () => {
    for (const out of ['hello', '{"answer": 42}', '{"hermes_reply": {', '  spaced  ']) {
      expect(parseCommandReply(out)).toEqual({ ok: true, result: { text: out.trim() } });
    }
  });

  it('a hermes_reply: text, a file read from its path, a file by https URL, a prompt and a reaction', () => {
    const path = join(dir.path, 'chart.png');
    writeFileSync(path, Buffer.from('png bytes'));
    const out = JSON.stringify({
      hermes_reply: {
        text: 'Here you go',
        media: [
          { kind: 'image', path, caption: 'the chart' },
          { kind: 'document', url: 'https://files.example/r.pdf' },
        ],
        prompt: { text: 'Ship it?', options: [{ id: 'yes', label: 'Yes' }], timeout_s: 600 },
        react: '👍',
      },
    });
    const reply = parseCommandReply(out);
    if (!reply.ok) throw new Error(reply.error);
    expect(reply.result.text).toBe('Here you go');
    expect(reply.result.actions).toEqual([
      {
        kind: 'media',
        mediaKind: 'image',
        file: { bytes: Buffer.from('png bytes'), filename: 'chart.png', mime: 'image/png' },
        caption: 'the chart',
      },
      { kind: 'media', mediaKind: 'document', file: { url: 'https://files.example/r.pdf' } },
      { kind: 'prompt', text: 'Ship it?', options: [{ id: 'yes', label: 'Yes' }], timeoutSeconds: 600 },
      { kind: 'react', emoji: '👍' },
    ]);
  });

  it('refuses what it cannot use with a message that says which part', () => {
    const cases: [unknown, RegExp][] = [
      [
        { media: [{ kind: 'image', path: join(dir.path, 'missing.png') }] },
        /media\[0\]\.path cannot be read/,
      ],
      [{ media: [{ kind: 'image', url: 'http://files.example/x.png' }] }, /media\[0\]\.url must be https/],
      [{ media: [{ kind: 'image' }] }, /exactly one of path and url/],
      [{ media: [{ kind: 'gif', url: 'https://x.example/a.gif' }] }, /kind/],
      [{ prompt: { text: 'q', options: [{ id: 'has space', label: 'x' }] } }, /prompt/],
      [{ text: '   ' }, /neither text nor anything to do/],
      [{ media: [{ kind: 'document', path: dir.path }] }, /media\[0\]\.path is not a regular file/],
    ];
    for (const [hermes_reply, error] of cases) {
      const reply = parseCommandReply(JSON.stringify({ hermes_reply }));
      expect(reply.ok, JSON.stringify(hermes_reply)).toBe(false);
      if (!reply.ok) expect(reply.error).toMatch(error);
    }
  });
});
