import { expect, it } from 'vitest';

it('fails on purpose, so that .ci/run can check a failure fails the run', () => {
  expect('this test').toBe('failing');
});
