import WebSocket from 'ws';

/** A browser stand-in for the built-in web chat: one visitor in one room. */
export class WebChatClient {
  readonly frames: Record<string, unknown>[] = [];
  private ws: WebSocket | undefined;

  constructor(
    private readonly baseUrl: string,
    readonly room: string,
    readonly visitor: string,
  ) {}

  get chatId(): string {
    return `wc-${this.room}-${this.visitor}`;
  }

  async open(): Promise<void> {
    const url = `${this.baseUrl.replace(/^http/, 'ws')}/chat/ws?room=${this.room}&visitor=${this.visitor}`;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.on('message', (data: Buffer) =>
      this.frames.push(JSON.parse(data.toString('utf8')) as Record<string, unknown>),
    );
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
  }

  say(text: string): void {
    this.ws?.send(JSON.stringify({ type: 'message', text }));
  }

  /** Agent messages as the page would show them, with edits applied. */
  agentTexts(): string[] {
    const texts = new Map<string, string>();
    for (const frame of this.frames) {
      if (frame.type === 'message') {
        const message = frame.message as { id: string; role: string; text: string };
        if (message.role === 'agent') texts.set(message.id, message.text);
      }
      if (frame.type === 'edit' && texts.has(frame.message_id as string))
        texts.set(frame.message_id as string, frame.text as string);
    }
    return [...texts.values()];
  }

  close(): void {
    this.ws?.close();
  }
}
