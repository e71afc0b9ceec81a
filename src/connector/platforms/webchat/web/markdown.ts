import type { default as MarkdownIt, RendererRule } from 'markdown-it';

/**
 * Markdown for agent messages, by markdown-it (the page loads its browser build, which defines
 * the global `markdownit`, before this module).
 *
 * Safe by configuration: raw HTML is never HTML (`html: false` escapes it), nothing but http(s)
 * ever becomes a link (`validateLink`), images stay text, and links open in a new tab without an
 * opener or a referrer. Code fences get a language label and a copy button (the page handles
 * `.md-copy` clicks); an unterminated fence renders as code to the end, so a streamed reply looks
 * right while it grows. Tables scroll sideways inside the bubble; column alignment is a class
 * (the page's CSP allows no inline styles).
 */

type MarkdownItFactory = typeof MarkdownIt;

/** The markdown-it settings of the page; the unit tests run them in Node. */
export const MARKDOWN_OPTIONS = {
  html: false,
  linkify: true,
  breaks: true,
  typographer: false,
} as const;

const LINK_REL = 'noopener noreferrer nofollow';

/** A renderer (source → HTML) on `factory`: the page passes the global, the tests the package. */
export function createMarkdownRenderer(factory: MarkdownItFactory): (source: string) => string {
  const md = factory(MARKDOWN_OPTIONS);
  md.disable('image');
  md.validateLink = (url: string) => /^https?:\/\//i.test(url.trim());
  const escapeHtml = md.utils.escapeHtml;

  md.renderer.rules.link_open = (tokens, idx, options, _env, self) => {
    const token = tokens[idx];
    if (token) {
      token.attrSet('target', '_blank');
      token.attrSet('rel', LINK_REL);
    }
    return self.renderToken(tokens, idx, options);
  };

  md.renderer.rules.fence = (tokens, idx) => {
    const token = tokens[idx];
    const lang = /^[\w+#.-]{1,32}/.exec(token?.info.trim() ?? '')?.[0] ?? '';
    return (
      '<div class="md-code"><div class="md-code-bar">' +
      `<span class="md-lang">${lang ? escapeHtml(lang) : 'code'}</span>` +
      '<button type="button" class="md-copy" aria-label="Copy code">Copy</button></div>' +
      `<pre><code>${escapeHtml((token?.content ?? '').replace(/\n$/, ''))}</code></pre></div>\n`
    );
  };

  const renderTableOpen = md.renderer.rules.table_open;
  md.renderer.rules.table_open = (tokens, idx, options, env, self) =>
    `<div class="md-table">${renderTableOpen ? renderTableOpen(tokens, idx, options, env, self) : self.renderToken(tokens, idx, options)}`;
  const renderTableClose = md.renderer.rules.table_close;
  md.renderer.rules.table_close = (tokens, idx, options, env, self) =>
    `${renderTableClose ? renderTableClose(tokens, idx, options, env, self) : self.renderToken(tokens, idx, options)}</div>`;

  // Column alignment as a class: the page's CSP allows no inline style attributes.
  const alignedCell: RendererRule = (tokens, idx, options, _env, self) => {
    const token = tokens[idx];
    const align = /^text-align:(left|center|right)$/.exec(String(token?.attrGet('style') ?? ''))?.[1];
    if (token) {
      token.attrs = (token.attrs ?? []).filter(([name]) => name !== 'style');
      if (align) token.attrJoin('class', `md-align-${align}`);
    }
    return self.renderToken(tokens, idx, options);
  };
  md.renderer.rules.th_open = alignedCell;
  md.renderer.rules.td_open = alignedCell;

  return (source: string) => md.render(source);
}

declare const markdownit: MarkdownItFactory;

let render: ((source: string) => string) | undefined;

/** HTML for an agent message. */
export function renderMarkdown(source: string): string {
  render ??= createMarkdownRenderer(markdownit);
  return render(source);
}
