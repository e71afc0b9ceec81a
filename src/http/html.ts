import { createHash } from 'node:crypto';

/** What the server-rendered page shells share: the one HTML escape, JSON for a data block, CSP hashes. */

/** Text for HTML: element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** JSON for an inert `<script type="application/json">` block: no `</script>` or `<!--` breakouts. */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/** A CSP hash source (`'sha256-…'`) for an inline script or style. */
export function cspHashSource(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

/** The `<head>` of one of our pages; every URL and text is escaped by `htmlDocument`. */
export interface DocumentHead {
  /** The window title (plain text). */
  title: string;
  /** Style sheets, by URL, in order. */
  stylesheets?: readonly string[];
  /** A constant style sheet inlined in a `<style>` element (the page's CSP must allow it by hash). */
  inlineStyle?: string;
  /** Classic scripts loaded with `defer`, by URL, before the modules. */
  deferredScripts?: readonly string[];
  /** Module scripts, by URL. */
  modules?: readonly string[];
  /** Per-request settings for the page script: an inert JSON block with this id. */
  config?: { id: string; value: unknown };
  /** Let the page draw under the notch of a phone (the web chat). */
  viewportFitCover?: boolean;
  /** Whether the page sends a Referer (off for pages that carry tokens in their URLs or config). */
  noReferrer?: boolean;
  /** An empty favicon, so the browser does not request `/favicon.ico`. */
  noFavicon?: boolean;
}

/**
 * A whole HTML document: the head every page of ours shares (charset, viewport, colour scheme) and
 * `body`, the markup inside `<body>` (already escaped by its caller).
 */
export function htmlDocument(head: DocumentHead, body: string): string {
  const lines = [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<meta name="viewport" content="width=device-width, initial-scale=1${head.viewportFitCover ? ', viewport-fit=cover' : ''}">`,
    '<meta name="color-scheme" content="light dark">',
  ];
  if (head.noReferrer) lines.push('<meta name="referrer" content="no-referrer">');
  lines.push(`<title>${escapeHtml(head.title)}</title>`);
  if (head.noFavicon) lines.push('<link rel="icon" href="data:,">');
  for (const href of head.stylesheets ?? []) lines.push(`<link rel="stylesheet" href="${escapeHtml(href)}">`);
  if (head.inlineStyle !== undefined) lines.push(`<style>${head.inlineStyle}</style>`);
  if (head.config)
    lines.push(
      `<script type="application/json" id="${escapeHtml(head.config.id)}">${scriptJson(head.config.value)}</script>`,
    );
  for (const src of head.deferredScripts ?? [])
    lines.push(`<script src="${escapeHtml(src)}" defer></script>`);
  for (const src of head.modules ?? [])
    lines.push(`<script type="module" src="${escapeHtml(src)}"></script>`);
  lines.push('</head>', '<body>', body.trim(), '</body>', '</html>', '');
  return lines.join('\n');
}

/** The top bar's brand block shared by the dashboard and the admin console: logo, heading, subtitle. */
export function brandHtml(
  heading: string,
  subtitle: string,
  options: { subtitleId?: string; extra?: string } = {},
): string {
  const id = options.subtitleId ? ` id="${escapeHtml(options.subtitleId)}"` : '';
  return `<div class="brand">
    <span class="logo" aria-hidden="true">H</span>
    <div>
      <h1>${escapeHtml(heading)}</h1>
      <p${id} class="sub">${escapeHtml(subtitle)}</p>
    </div>${options.extra ? `\n    ${options.extra}` : ''}
  </div>`;
}
