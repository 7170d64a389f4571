import inspector from 'node:inspector';

/**
 * B::LexInfo for Node: lists the variables a function can reach through its closure (its
 * `[[Scopes]]`: enclosing function scopes, the CommonJS module wrapper, ES module and script
 * scopes; never the global scope), with type and size, so that two listings taken around one call
 * can be diffed. Read through the inspector (`Runtime.getProperties`), the only way to see
 * closure variables from outside the function.
 */

type Remote = { type: string; subtype?: string; className?: string; description?: string; value?: unknown; objectId?: string };
type Prop = { name: string; value?: Remote; get?: Remote; set?: Remote };

const GROUP = 'leakwatch-scope';
const HANDLE = Symbol.for('leakwatch.scopeTarget');
const MAX_VARS = 60;
const MAX_CHILDREN = 40;
const MAX_LINES = 600;

export class ScopeReader {
  private session: inspector.Session | undefined;

  private post<T>(method: string, params?: Record<string, unknown>): Promise<T> {
    if (this.session === undefined) {
      this.session = new inspector.Session();
      this.session.connect();
    }
    const s = this.session;
    return new Promise<T>((resolve, reject) => {
      s.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res as T)));
    });
  }

  /** The listing for several functions, one block each. Never throws: a failure is a line. */
  async listing(fns: readonly Function[]): Promise<string[]> {
    const lines: string[] = [];
    try {
      for (const fn of fns) {
        if (lines.length >= MAX_LINES) break;
        await this.one(fn, lines);
      }
    } catch (e) {
      lines.push(`(scope listing unavailable: ${e instanceof Error ? e.message : String(e)})`);
    } finally {
      try { await this.post('Runtime.releaseObjectGroup', { objectGroup: GROUP }); } catch { /* session gone */ }
    }
    return lines.length > MAX_LINES ? [...lines.slice(0, MAX_LINES), '(listing truncated)'] : lines;
  }

  private async remoteOf(value: unknown): Promise<string> {
    // The inspector can only name objects it can reach from an expression: lend it the function
    // through a registered symbol for the time of one evaluate (symbol keys are not globals'
    // names, so this never shows up in newGlobals).
    const g = globalThis as Record<symbol, unknown>;
    g[HANDLE] = value;
    try {
      const r = await this.post<{ result: Remote }>('Runtime.evaluate', { expression: 'globalThis[Symbol.for("leakwatch.scopeTarget")]', objectGroup: GROUP, silent: true });
      if (r.result.objectId === undefined) throw new Error('no object id');
      return r.result.objectId;
    } finally {
      delete g[HANDLE];
    }
  }

  private async props(objectId: string): Promise<{ result: Prop[]; internalProperties?: Prop[] }> {
    return this.post('Runtime.getProperties', { objectId, ownProperties: true, generatePreview: false });
  }

  private async one(fn: Function, lines: string[]): Promise<void> {
    lines.push(`${(fn.name || '(anonymous)').replace(/^bound /, '')}()`);
    const id = await this.remoteOf(fn);
    let p = await this.props(id);
    // Fastify hands out bound handlers: their closure is the target function's.
    const target = p.internalProperties?.find((x) => x.name === '[[TargetFunction]]')?.value?.objectId;
    if (target !== undefined) p = await this.props(target);
    const scopes = p.internalProperties?.find((x) => x.name === '[[Scopes]]')?.value?.objectId;
    if (scopes === undefined) { lines.push('  (no scopes)'); return; }
    const list = await this.props(scopes);
    for (const s of list.result) {
      const v = s.value;
      if (v === undefined || v.objectId === undefined) continue;
      const desc = v.description ?? 'scope';
      if (desc === 'Global' || desc.startsWith('Global')) continue;
      lines.push(`  ${desc}`);
      const vars = await this.props(v.objectId);
      const sorted = vars.result.filter((x) => x.value !== undefined).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const x of sorted.slice(0, MAX_VARS)) {
        if (lines.length >= MAX_LINES) return;
        lines.push(`    ${x.name}: ${await this.describe(x.value as Remote, true)}`);
        if (isPlainObject(x.value as Remote)) await this.children(x.value as Remote, lines);
      }
      if (sorted.length > MAX_VARS) lines.push(`    … ${sorted.length - MAX_VARS} more`);
    }
  }

  /** One level into plain objects: module state often lives in one (`const state = {...}`). */
  private async children(v: Remote, lines: string[]): Promise<void> {
    if (v.objectId === undefined) return;
    const p = await this.props(v.objectId);
    const own = p.result.filter((x) => x.value !== undefined || x.get !== undefined);
    for (const x of own.slice(0, MAX_CHILDREN)) {
      if (lines.length >= MAX_LINES) return;
      lines.push(`      .${x.name}: ${x.value ? await this.describe(x.value, false) : 'getter'}`);
    }
    if (own.length > MAX_CHILDREN) lines.push(`      … ${own.length - MAX_CHILDREN} more`);
  }

  private async describe(v: Remote, countKeys: boolean): Promise<string> {
    switch (v.type) {
      case 'undefined': return 'undefined';
      case 'number': case 'boolean': case 'bigint': return `${v.type} ${String(v.description ?? v.value)}`;
      case 'string': {
        const s = String(v.value);
        return `string ${JSON.stringify(s.length > 40 ? s.slice(0, 37) + '...' : s)} len=${s.length}`;
      }
      case 'symbol': return `symbol ${v.description ?? ''}`;
      case 'function': {
        const head = (v.description ?? '').split('\n')[0];
        const cls = /^class\s+([\w$]+)/.exec(head);
        if (cls) return `class ${cls[1]}`;
        const name = head.split('(')[0].replace(/^(async\s+)?function\s*\*?\s*/, '').trim();
        return `function ${name.length > 0 && name.length < 60 ? name : '(anonymous)'}`;
      }
      case 'object': {
        if (v.subtype === 'null') return 'null';
        // "Array(3)", "Map(2)", "Set(0)", "Uint8Array(4096)" already carry their size.
        if (v.subtype === 'array' || v.subtype === 'map' || v.subtype === 'set' || v.subtype === 'typedarray' || v.subtype === 'arraybuffer' || v.subtype === 'weakmap' || v.subtype === 'weakset') return v.description ?? v.subtype;
        if (v.subtype === 'promise' || v.subtype === 'regexp' || v.subtype === 'date' || v.subtype === 'error') return `${v.className ?? v.subtype}`;
        if (countKeys && v.objectId !== undefined && isPlainObject(v)) return `${v.className ?? 'Object'} {${(await this.props(v.objectId)).result.length} keys}`;
        if (v.objectId !== undefined) {
          const n = (await this.props(v.objectId)).result.length;
          return `${v.className ?? 'Object'} {${n} keys}`;
        }
        return v.className ?? 'Object';
      }
      default: return v.type;
    }
  }

  close(): void {
    try { this.session?.disconnect(); } catch { /* already closed */ }
    this.session = undefined;
  }
}

function isPlainObject(v: Remote): boolean {
  return v.type === 'object' && v.subtype === undefined && v.className === 'Object';
}
