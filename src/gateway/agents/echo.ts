import { type Agent, type AgentTurnInput, type AgentTurnResult, abortError } from './types.js';

/** The longest `/slow N` accepted, in seconds. */
export const MAX_SLOW_SECONDS = 30;
const DEFAULT_SLOW_SECONDS = 5;
const DEFAULT_SLOW_TEXT = 'this reply streams in word by word; send /stop to interrupt it';

export const ECHO_HELP = [
  'This is the hermes-relay echo agent: it repeats what you send, prefixed with "echo:". It is the',
  'default agent, so the relay can be tried out before any model is configured.',
  '',
  'Try "/slow 10 some words" to watch a reply stream in over 10 seconds, and /stop to interrupt it.',
  'Where the chat can show them: /image sends a picture, /file a document, "/ask a question" asks with',
  'Yes/No buttons, /react reacts to your message, and "/thread a name" opens a thread (forum topic).',
  '',
  'To talk to a real model, set on the gateway:',
  '• HERMES_AGENT=openai with OPENAI_BASE_URL (any OpenAI-compatible endpoint, e.g. https://api.openai.com/v1 or http://localhost:11434/v1), OPENAI_API_KEY and HERMES_MODEL;',
  '• or HERMES_AGENT=command with HERMES_AGENT_COMMAND, a program run per turn that reads the conversation as JSON on stdin and prints the reply on stdout.',
].join('\n');

const HELP_PATTERN = /^\/?help(?:@\S+)?$/i;
const IMAGE_PATTERN = /^\/image(?:@\S+)?$/i;
const FILE_PATTERN = /^\/file(?:@\S+)?$/i;
const ASK_PATTERN = /^\/ask(?:@\S+)?(?:\s+([\s\S]+))?$/i;
const REACT_PATTERN = /^\/react(?:@\S+)?$/i;
const THREAD_PATTERN = /^\/thread(?:@\S+)?(?:\s+([\s\S]+))?$/i;

/** A 16×16 PNG (the relay's plug colour), so `/image` needs no file on disk. */
const ECHO_PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAAAFklEQVR4nGPQztlAEmIY1TCqYfhqAABTXEcQu0W6kQAAAABJRU5ErkJggg==',
  'base64',
);

/** The ops the echo agent demonstrates on request (the gateway falls back where a chat lacks one). */
function echoActions(text: string): AgentTurnResult | undefined {
  if (IMAGE_PATTERN.test(text))
    return {
      text: '',
      actions: [
        {
          kind: 'media',
          mediaKind: 'image',
          file: { bytes: ECHO_PNG, filename: 'hermes-echo.png', mime: 'image/png' },
          caption: 'A picture from the echo agent',
        },
      ],
    };
  if (FILE_PATTERN.test(text))
    return {
      text: '',
      actions: [
        {
          kind: 'media',
          mediaKind: 'document',
          file: {
            bytes: Buffer.from('This document was sent by the hermes-relay echo agent.\n'),
            filename: 'echo.txt',
            mime: 'text/plain',
          },
          caption: 'A document from the echo agent',
        },
      ],
    };
  const ask = ASK_PATTERN.exec(text);
  if (ask)
    return {
      text: '',
      actions: [
        {
          kind: 'prompt',
          text: ask[1]?.trim() || 'Do you like the relay?',
          promptKind: 'choice',
          options: [
            { id: 'yes', label: 'Yes', style: 'primary' },
            { id: 'no', label: 'No', style: 'secondary' },
          ],
        },
      ],
    };
  const thread = THREAD_PATTERN.exec(text);
  if (thread)
    return {
      text: '',
      actions: [{ kind: 'thread', name: thread[1]?.trim() || 'A thread from the echo agent' }],
    };
  if (REACT_PATTERN.test(text))
    return { text: 'Reacted 👍 to your message.', actions: [{ kind: 'react', emoji: '👍' }] };
  return undefined;
}
const SLOW_PATTERN = /^\/slow(?:@\S+)?(?=\s|$)(?:\s+(\d+(?:\.\d+)?)(?=\s|$))?\s*([\s\S]*)$/i;

/** `/slow N text` → seconds and text, or undefined when the message is not a `/slow` command. */
export function parseSlow(text: string): { seconds: number; text: string } | undefined {
  const match = SLOW_PATTERN.exec(text.trim());
  if (!match) return undefined;
  const seconds = match[1] === undefined ? DEFAULT_SLOW_SECONDS : Number(match[1]);
  return {
    seconds: Math.min(MAX_SLOW_SECONDS, Math.max(0, seconds)),
    text: match[2]?.trim() || DEFAULT_SLOW_TEXT,
  };
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(abortError());
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError());
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Replies `echo: <text>`; `/help` explains itself; `/slow N text` streams the echo over N seconds. */
export class EchoAgent implements Agent {
  readonly name = 'echo';
  /** Echo answers the message alone: no history read per turn. */
  readonly usesHistory = false;
  readonly commands = [
    { name: 'help', description: 'What the echo agent can do' },
    { name: 'image', description: 'Send a picture' },
    { name: 'file', description: 'Send a document' },
    {
      name: 'ask',
      description: 'Ask a question with Yes/No buttons',
      options: [{ type: 3, name: 'question', description: 'The question', required: false }],
    },
    {
      name: 'slow',
      description: 'Stream a reply slowly (stop it with /stop)',
      options: [
        { type: 3, name: 'text', description: 'Seconds, then words, e.g. 10 some words', required: false },
      ],
    },
  ];

  async run(input: AgentTurnInput): Promise<AgentTurnResult> {
    if (input.signal.aborted) throw abortError();
    const text = input.message.content.trim();
    if (HELP_PATTERN.test(text)) return { text: ECHO_HELP };
    const press = input.event.prompt_response;
    if (press) return { text: `You chose: ${press.label ?? press.option_id}` };
    const acted = echoActions(text);
    if (acted) return acted;
    const files = (input.event.media ?? []) as {
      filename?: string;
      kind?: string;
      size?: number;
      local_path?: string;
    }[];
    if (files.length > 0) {
      // Says what arrived and whether the gateway could fetch it (local_path), so the file path can be seen working.
      const described = files.map(
        (f) =>
          `${f.filename ?? f.kind ?? 'file'} (${f.size ?? '?'} bytes${f.local_path ? '' : ', not fetched'})`,
      );
      return { text: `echo: ${text || '(no text)'} — received ${described.join(', ')}` };
    }

    const slow = parseSlow(text);
    if (!slow) return { text: text ? `echo: ${text}` : 'echo: (empty message)' };

    const words = slow.text.split(/\s+/).filter((word) => word.length > 0);
    const stepMs = (slow.seconds * 1000) / Math.max(1, words.length);
    let soFar = 'echo:';
    for (const word of words) {
      await delay(stepMs, input.signal);
      soFar = `${soFar} ${word}`;
      input.onProgress?.(soFar);
    }
    if (input.signal.aborted) throw abortError();
    return { text: soFar };
  }
}
