/**
 * Reads a callgrind dump and splits its instruction count by what ran: V8's garbage collector,
 * V8's compilers (parser, bytecode generator, Sparkplug, TurboFan, deoptimizer), and the rest,
 * which is the program itself: JIT code, builtins, runtime functions, Node's C++, libuv, libc.
 *
 * Why: a server's per-request count is steady except for lumps. A TurboFan compile is tens of
 * millions of instructions and V8 keeps tiering functions up and down long after start-up; a
 * mark-compact is similar. Those lumps land in one measured run now and then. Counting them apart
 * gives a per-request figure that repeats to within a few percent, next to the GC and compile
 * figures, which are shown too (dev mode's forced GCs are GC instructions).
 * Classification is by self cost and function name. Generic helpers (libc's allocator and memory
 * functions, the C++ standard library) have no kind of their own: a call to one from a GC or
 * compiler function is charged, with everything under it, to its caller's kind. Before that, a
 * TurboFan compile's malloc/free/memset and std::map work (~2–3k instructions per request in a
 * window where dev mode was still recompiling) counted as program.
 */
import fs from 'node:fs';

export interface CallgrindSplit {
  total: number;
  gc: number;
  compile: number;
  /** total − gc − compile. */
  program: number;
}

const GC = /v8::internal::(Heap::|heap::|Scaveng|MarkCompact|MinorM|Mark(ing|er)|IncrementalMarking|ConcurrentMarking|Sweep|Evacuat|RememberedSet|SlotSet|TypedSlot|GCTracer|MemoryReducer|ArrayBufferSweeper|PointersUpdating|LocalHeap::|Safepoint|GlobalHandles::(Post|Iterate|Process|Compute)|EphemeronHashTable|ObjectStatsCollector|YoungGeneration|PagedSpace|SemiSpace|NewSpace|LargeObjectSpace|MemoryAllocator|MemoryChunk|Page::|FreeList)|Scaveng|MarkCompact|MarkingVisitor|Marking|Sweeper|Evacuat|RootVisitor|RootScavengeVisitor|IterateObjectCache|UpdatingItem|Worklist|heap::base::|cppgc::/;
/** Helpers that take the kind of whoever calls them (see above). */
const HELPER = /^(malloc|free|calloc|realloc|cfree|_int_(malloc|free|realloc)|malloc_consolidate|unlink_chunk|tcache_|__libc_(malloc|free|calloc|realloc)|mem(set|cpy|move|cmp|chr)|__mem|__(w)?str|strlen|strcmp|std::(_Rb_tree|__detail::|vector|__cxx11::basic_string|basic_string|_Hashtable|deque)|operator new|operator delete)/;
const COMPILE = /v8::internal::(compiler::|maglev::|baseline::|interpreter::|Parser|PreParser|Scanner|Utf16CharacterStream|Compiler::|Compile|.*Compilation|Deoptimizer|Translated|BytecodeArray|AstValueFactory|AstNodeFactory|Ast[A-Z]|DeclarationScope|Scope::|ScopeInfo::Create|Zone::|ZoneList|SourcePosition|FeedbackVector::New|Runtime_Compile|Runtime_InstallBaselineCode|Runtime_NotifyDeoptimized|OptimizingCompile|TurbofanCompilationJob)|^Runtime_Compile|^Runtime_Notify(Deoptimized)/;

/** Splits one dump. Self costs only: the cost lines after `calls=` are inclusive and skipped. */
export function splitCallgrind(file: string): CallgrindSplit {
  const text = fs.readFileSync(file, 'utf8');
  const names = new Map<string, string>();
  let kind = 0; // 0 program, 1 gc, 2 compile
  let skipNext = false;
  let moveNext = 0;
  let callee: string | undefined;
  const sums = [0, 0, 0];
  let total = 0;
  const classify = (name: string): number => (GC.test(name) ? 1 : COMPILE.test(name) ? 2 : 0);
  const kindOf = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.length === 0) continue;
    const c = line.charCodeAt(0);
    // Cost lines start with a digit, '+', '-' or '*' (relative positions).
    if ((c >= 48 && c <= 57) || c === 43 || c === 45 || c === 42) {
      const v = Number(line.slice(line.lastIndexOf(' ') + 1));
      if (!Number.isFinite(v)) continue;
      if (skipNext) {
        skipNext = false;
        if (moveNext !== 0) { sums[0] -= v; sums[moveNext] += v; }
        continue;
      }
      sums[kind] += v;
      total += v;
      continue;
    }
    if (line.startsWith('fn=')) {
      const m = /^fn=\((\d+)\)(?: (.*))?$/.exec(line);
      if (m) {
        if (m[2] !== undefined) { names.set(m[1], m[2]); kindOf.set(m[1], classify(m[2])); }
        kind = kindOf.get(m[1]) ?? (names.has(m[1]) ? classify(names.get(m[1])!) : 0);
      }
      continue;
    }
    if (line.startsWith('cfn=')) {
      const m = /^cfn=\((\d+)\)(?: (.*))?$/.exec(line);
      if (m && m[2] !== undefined) { names.set(m[1], m[2]); kindOf.set(m[1], classify(m[2])); }
      callee = m?.[1];
      continue;
    }
    if (line.startsWith('calls=')) {
      skipNext = true;
      // A GC or compiler function calling a generic helper: the call's inclusive cost (the next
      // cost line) moves from program to the caller's kind.
      moveNext = kind !== 0 && callee !== undefined && HELPER.test(names.get(callee) ?? '') ? kind : 0;
      continue;
    }
  }
  return { total, gc: sums[1], compile: sums[2], program: sums[0] };
}

if (require.main === module) {
  for (const f of process.argv.slice(2)) console.log(f, splitCallgrind(f));
}
