import v8 from 'node:v8';

export interface HeapSpaceRow {
  name: string;
  size: number;
  used: number;
  available: number;
  physical: number;
}

export interface HeapInfo {
  spaces: HeapSpaceRow[];
  totals: { size: number; used: number; available: number; physical: number; limit: number; external: number };
  code: { codeAndMetadata: number; bytecodeAndMetadata: number; externalScriptSource: number };
}

/**
 * V8's heap spaces now (what `v8.getHeapSpaceStatistics()` says), with totals.
 *
 * @example
 * ```ts
 * heapSpaces().spaces.find((s) => s.name === 'old_space')?.used;
 * ```
 */
export function heapSpaces(): HeapInfo {
  const spaces = v8.getHeapSpaceStatistics().map((s) => ({
    name: s.space_name,
    size: s.space_size,
    used: s.space_used_size,
    available: s.space_available_size,
    physical: s.physical_space_size,
  }));
  const hs = v8.getHeapStatistics() as v8.HeapInfo & { external_memory?: number };
  const code = v8.getHeapCodeStatistics();
  return {
    spaces,
    totals: {
      size: hs.total_heap_size,
      used: hs.used_heap_size,
      available: hs.total_available_size,
      physical: hs.total_physical_size,
      limit: hs.heap_size_limit,
      external: hs.external_memory ?? process.memoryUsage().external,
    },
    code: {
      codeAndMetadata: code.code_and_metadata_size,
      bytecodeAndMetadata: code.bytecode_and_metadata_size,
      externalScriptSource: code.external_script_source_size,
    },
  };
}
