import { describe, expect, it } from 'vitest';
import { errorMessage } from '../../src/common/errors.js';

describe('errorMessage', () => {
  it('reads an Error, an error-like object, and anything else thrown', () => {
    expect(errorMessage(new TypeError('bad type'))).toBe('bad type');
    expect(errorMessage({ message: 'from a plain object' })).toBe('from a plain object');
    expect(errorMessage('a thrown string')).toBe('a thrown string');
    expect(errorMessage(42)).toBe('42');
    expect(errorMessage(undefined)).toBe('undefined');
    expect(errorMessage({ message: 7 })).toBe('[object Object]');
  });
});
