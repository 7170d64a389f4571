import { parentPort, workerData } from 'node:worker_threads';
import { summarizeFirst, analyzeSecond } from './heapsnapshot';

/** Worker entry: parses one snapshot file in this thread's own heap and posts the result. */
interface Task { kind: 'first' | 'second'; file: string; boundaryId?: number; maxGroups?: number; pathsFor?: number }

const task = workerData as Task;
try {
  const result = task.kind === 'first'
    ? summarizeFirst(task.file)
    : analyzeSecond(task.file, task.boundaryId ?? 0, { maxGroups: task.maxGroups, pathsFor: task.pathsFor });
  parentPort?.postMessage({ ok: true, result });
} catch (e) {
  parentPort?.postMessage({ ok: false, error: e instanceof Error ? e.message : String(e) });
}
