/**
 * Jest's test sequencer, slowest file first, so that with two workers neither is left running a
 * long file alone at the end. A file's duration is jest's own record of its last run on this
 * machine, or else (a fresh clone) tests/measurements/suite-durations.json, seconds per file as
 * measured on the project's machine; only the order depends on it, never a result.
 */
import { readFileSync } from 'node:fs';
import { URL } from 'node:url';
import path from 'node:path';
import Sequencer from '@jest/test-sequencer';

const recorded = JSON.parse(readFileSync(new URL('../measurements/suite-durations.json', import.meta.url), 'utf8')).seconds;

export default class SlowestFirst extends Sequencer {
  sort(tests) {
    const durationMs = (test) => {
      const measured = this.time(test);
      if (measured !== undefined) return measured;
      const file = path.relative(test.context.config.rootDir, test.path).split(path.sep).join('/');
      return (recorded[file] ?? 0) * 1000;
    };
    return [...tests].sort((a, b) => durationMs(b) - durationMs(a) || (a.path < b.path ? -1 : 1));
  }
}
