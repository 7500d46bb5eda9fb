// Small assertions with messages that say what a person would have seen.
import assert from 'node:assert/strict';

export function expect(cond, message) {
  assert.ok(cond, message);
}

export { assert };
