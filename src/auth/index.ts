export * from './delivery-signature.js';
export * from './hmac.js';
export * from './secret-strength.js';
export * from './secrets.js';
export * from './upgrade-token.js';
