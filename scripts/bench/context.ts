/**
 * What every bench scenario is given: the stack under test, the options, where results and
 * process figures go. Its own module, so scenarios and the floor can share it without
 * importing each other.
 */
import type { BenchOptions } from './options';
import type { ProcessMonitor } from './proc-stats';
import type { Results } from './report';
import type { Stack } from './stack';

export interface ScenarioContext {
  stack: Stack;
  options: BenchOptions;
  results: Results;
  monitor: ProcessMonitor;
  skus: string[];
  /** Unique per bench run, so customer ids (and thus the orders of each scenario) never mix. */
  runTag: string;
  log: (line: string) => void;
}
