import { describe, expect, it } from 'vitest';
import { redact, redactUrl } from '../../src/common/redact.js';

describe('redact', () => {
  it('cuts every occurrence of each secret, also URL-encoded, and leaves short ones alone', () => {
    expect(redact('key=s3cret and again s3cret', ['s3cret'])).toBe('key=[redacted] and again [redacted]');
    expect(redact('GET /bot123:AA/B?x', ['123:AA/B'])).toBe('GET /bot[redacted]?x');
    expect(redact('GET /bot123%3AAA%2FB?x', ['123:AA/B'])).toBe('GET /bot[redacted]?x');
    expect(redact('short abc stays', ['abc', '', undefined, null])).toBe('short abc stays');
  });
});

describe('redactUrl', () => {
  it('masks the password, or a lone user name, and nothing else', () => {
    expect(redactUrl('redis://:pw@h:1/0')).toBe('redis://:***@h:1/0');
    expect(redactUrl('redis://user:s3cret@127.0.0.1:6379')).toBe('redis://user:***@127.0.0.1:6379');
    expect(redactUrl('https://tok3n@api.example/v1')).toBe('https://***@api.example/v1');
    expect(redactUrl('https://api.example/v1')).toBe('https://api.example/v1');
  });

  it('masks a credential even in text that is not a URL', () => {
    expect(redactUrl('not a url //user:pw@host')).toBe('not a url //***@host');
  });
});
