import { readFileSync, statSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { z } from 'zod';
import { describeZodError, MEDIA_KINDS, MEDIA_MAX_BYTES, PROMPT_ID_PATTERN } from '../../protocol/index.js';
import type { AgentAction, AgentTurnResult } from './types.js';

/**
 * What a command agent prints. Plain text is the reply. A JSON object with a `hermes_reply` key is
 * a structured reply: text plus files, a question with buttons and a reaction (docs/agents.md §3.3).
 * The key makes it opt-in: an agent that answers users with JSON text is never misread.
 */

const ReplySchema = z.object({
  text: z.string().max(1_000_000).default(''),
  media: z
    .array(
      z
        .object({
          kind: z.enum(MEDIA_KINDS),
          path: z.string().min(1).optional(),
          url: z.string().url().optional(),
          caption: z.string().max(4096).optional(),
          filename: z.string().max(255).optional(),
          mime: z.string().max(255).optional(),
        })
        .refine((m) => (m.path === undefined) !== (m.url === undefined), 'give exactly one of path and url'),
    )
    .max(10)
    .default([]),
  prompt: z
    .object({
      text: z.string().min(1).max(4096),
      options: z
        .array(z.object({ id: z.string().regex(PROMPT_ID_PATTERN), label: z.string().min(1).max(200) }))
        .min(1)
        .max(10),
      kind: z.enum(['approval', 'clarify', 'choice']).optional(),
      timeout_s: z
        .number()
        .int()
        .positive()
        .max(7 * 24 * 3600)
        .optional(),
    })
    .optional(),
  react: z.string().min(1).max(32).optional(),
});

const MIME_BY_EXTENSION: Record<string, string> = {
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ogg': 'audio/ogg',
  '.oga': 'audio/ogg',
  '.mp3': 'audio/mpeg',
  '.m4a': 'audio/mp4',
  '.mp4': 'video/mp4',
  '.webm': 'video/webm',
  '.pdf': 'application/pdf',
  '.txt': 'text/plain',
  '.md': 'text/markdown',
  '.csv': 'text/csv',
  '.json': 'application/json',
};

export type CommandReply = { ok: true; result: AgentTurnResult } | { ok: false; error: string };

export function parseCommandReply(stdout: string): CommandReply {
  const text = stdout.trim();
  if (!text.startsWith('{') || !text.includes('"hermes_reply"')) return { ok: true, result: { text } };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: true, result: { text } };
  }
  if (!value || typeof value !== 'object' || !('hermes_reply' in value))
    return { ok: true, result: { text } };
  const parsed = ReplySchema.safeParse((value as { hermes_reply: unknown }).hermes_reply);
  if (!parsed.success) return { ok: false, error: `agent command reply: ${describeZodError(parsed.error)}` };
  const reply = parsed.data;
  const actions: AgentAction[] = [];
  for (const [index, media] of reply.media.entries()) {
    if (media.url !== undefined) {
      if (!media.url.startsWith('https://'))
        return { ok: false, error: `agent command reply: media[${index}].url must be https` };
      actions.push({
        kind: 'media',
        mediaKind: media.kind,
        file: { url: media.url, ...(media.filename ? { filename: media.filename } : {}) },
        ...(media.caption ? { caption: media.caption } : {}),
      });
      continue;
    }
    const path = media.path as string;
    let bytes: Buffer;
    try {
      const stat = statSync(path);
      // A FIFO or a device would block or never end: regular files only.
      if (!stat.isFile())
        return { ok: false, error: `agent command reply: media[${index}].path is not a regular file` };
      const size = stat.size;
      if (size > MEDIA_MAX_BYTES)
        return {
          ok: false,
          error: `agent command reply: media[${index}].path is larger than ${MEDIA_MAX_BYTES} bytes`,
        };
      bytes = readFileSync(path);
    } catch {
      return { ok: false, error: `agent command reply: media[${index}].path cannot be read` };
    }
    actions.push({
      kind: 'media',
      mediaKind: media.kind,
      file: {
        bytes,
        filename: media.filename ?? basename(path),
        mime: media.mime ?? MIME_BY_EXTENSION[extname(path).toLowerCase()] ?? 'application/octet-stream',
      },
      ...(media.caption ? { caption: media.caption } : {}),
    });
  }
  if (reply.prompt)
    actions.push({
      kind: 'prompt',
      text: reply.prompt.text,
      options: reply.prompt.options,
      ...(reply.prompt.kind ? { promptKind: reply.prompt.kind } : {}),
      ...(reply.prompt.timeout_s ? { timeoutSeconds: reply.prompt.timeout_s } : {}),
    });
  if (reply.react) actions.push({ kind: 'react', emoji: reply.react });
  if (!reply.text.trim() && actions.length === 0)
    return { ok: false, error: 'agent command reply: neither text nor anything to do' };
  return { ok: true, result: { text: reply.text.trim(), ...(actions.length ? { actions } : {}) } };
}
