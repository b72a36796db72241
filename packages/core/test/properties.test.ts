// Property tests (fast-check) of everything the SDK takes from its caller or from a sandbox: options of start,
// run and the code tools, runStep's options, files API paths, merge options, and the native protocol's
// encoder and decoder. Malformed input of any shape must end in a ZerobootError with a stable code: never
// another exception (a TypeError from deep inside), never a hang, never a run of code it should have refused.
import { inspect } from 'node:util';

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { fakeZeroboot } from '../../../test/adapters/fake-zeroboot.js';
import { within } from '../../../test/helpers.js';
import { MESSAGE_HEADER_SIZE, PROTOCOL_VERSION, decodeMessage, encodeRequest, memfdRequestHeader, type RequestParts } from '../src/native-protocol.js';
import { runOptionsSchema, startSchema } from '../src/options.js';
import { sandboxPath } from '../src/sandbox.js';
import { Zeroboot, ZerobootError, resolveCodeToolOptions, runStep, type Sandbox, type ZerobootErrorCode } from '../src/index.js';

/** Runs per property: each is cheap (validation refuses before any process starts) except where noted. */
const RUNS = 1000;
/** Every run of every property, counted for the report at the end. */
let executed = 0;
afterAll(() => console.log(`property tests: ${executed} generated inputs checked`));

function counted<Ts extends unknown[]>(predicate: (...values: Ts) => void | Promise<void>) {
  return async (...values: Ts) => {
    executed++;
    await predicate(...values);
  };
}

/** Any JavaScript value: primitives, nested objects and arrays, null prototypes, typed arrays, maps, dates, bigints, symbols. */
const anything = fc.oneof(
  fc.anything({ withBigInt: true, withBoxedValues: true, withDate: true, withMap: true, withSet: true, withNullPrototype: true, withObjectString: true, withTypedArray: true, withSparseArray: true, maxDepth: 3 }),
  fc.constantFrom(Symbol('s'), () => 1, NaN, Infinity, -0, new AbortController().signal, Promise.resolve(), new Error('e')),
);

/** The promise (or the call's throw) must be a ZerobootError with one of `codes`, within 5 s. */
async function refusedWith(call: () => unknown, codes: readonly ZerobootErrorCode[]): Promise<ZerobootError> {
  let outcome: unknown;
  try {
    outcome = await within(Promise.resolve().then(call), 5000, 'a call with malformed input');
  } catch (error) {
    if (!ZerobootError.isInstance(error)) throw new Error(`not a ZerobootError: ${String((error as Error)?.stack ?? error)}`);
    if (!codes.includes(error.code)) throw new Error(`code ${error.code}, expected one of ${codes.join(', ')}: ${error.message}`);
    expect(error.message.length).toBeGreaterThan(10);
    return error;
  }
  // Something started or ran that should not have: stop it before failing.
  if (outcome instanceof Zeroboot) await outcome.close();
  throw new Error(`expected a ZerobootError, got a result: ${inspect(outcome, { depth: 2 })}`);
}

/** A property over arbitrary fields of an options object: a known key with any value, or an unknown key. */
function optionsLike(keys: readonly string[]) {
  return fc.oneof(
    anything,
    fc.dictionary(fc.oneof(fc.constantFrom(...keys), fc.string()), anything, { maxKeys: 4 }),
    fc.record(Object.fromEntries(keys.map((k) => [k, anything])), { requiredKeys: [] }),
  );
}

describe('Zeroboot.start', () => {
  test('malformed options reject with INVALID_ARGUMENT before anything starts', async () => {
    const keys = ['templates', 'limits', 'maxLimits', 'network'];
    const nested = fc.record({
      templates: fc.oneof(anything, fc.dictionary(fc.oneof(fc.constantFrom('python', 'node', 'shell'), fc.string()), optionsLike(['runtime', 'preload', 'pool', 'executable', 'prewarm', 'concurrency']), { maxKeys: 3 })),
      limits: optionsLike(['timeoutMs', 'memoryMb', 'maxProcesses', 'maxOutputBytes', 'diskMb']),
    }, { requiredKeys: [] });
    await fc.assert(
      fc.asyncProperty(fc.oneof(optionsLike(keys), nested), counted(async (options) => {
        // Valid options would start fork-servers: only the invalid ones are this property's business.
        fc.pre(options !== undefined && !startSchema.safeParse(options).success); // undefined: the defaults
        await refusedWith(() => Zeroboot.start(options as never), ['INVALID_ARGUMENT']);
      })),
      { numRuns: RUNS },
    );
  });
});

describe('with a Zeroboot', () => {
  let zb: Zeroboot;
  let sb: Sandbox;
  beforeAll(async () => {
    zb = await Zeroboot.start({ templates: { shell: { pool: 2 } }, limits: { diskMb: 8 } });
    sb = await zb.sandbox();
  }, 30_000);
  afterAll(async () => {
    await zb?.close();
  });

  test('run: a malformed runtime, code or options reject with INVALID_ARGUMENT or UNKNOWN_RUNTIME, and run nothing', async () => {
    const forksBefore = zb.stats().templates.shell!.forks;
    const runOptions = optionsLike(['timeoutMs', 'env', 'stdin', 'files', 'onStdout', 'onStderr', 'signal']);
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.constant('shell'), anything), fc.oneof(fc.constant('true'), anything), fc.oneof(fc.constant(undefined), runOptions), counted(async (runtime, code, options) => {
        const valid = runtime === 'shell' && typeof code === 'string' && (options === undefined || runOptionsSchema.safeParse(options).success);
        fc.pre(!valid || (options as { timeoutMs?: number })?.timeoutMs! > 600_000);
        await refusedWith(() => zb.run(runtime as string, code as string, options as never), ['INVALID_ARGUMENT', 'UNKNOWN_RUNTIME']);
        await refusedWith(() => sb.run(runtime as string, code as string, options as never), ['INVALID_ARGUMENT', 'UNKNOWN_RUNTIME']);
      })),
      { numRuns: RUNS },
    );
    // Refused at the edge: not one sandbox was used for them.
    expect(zb.stats().templates.shell!.forks).toBe(forksBefore);
  });

  test('files API: any path string either works or is refused with a files code, never a setup failure', async () => {
    // Real operations in real sandboxes (~2 ms each): fewer runs. Paths mix the dangerous parts on purpose.
    const part = fc.oneof(fc.constantFrom('..', '.', '', 'workspace', 'tmp', 'etc', 'proc', 'passwd', 'a', ' ', '\\', '~', 'x'.repeat(300), '€'.repeat(100)), fc.string({ maxLength: 12 }), fc.string({ unit: 'binary', maxLength: 6 }));
    const path = fc.oneof(fc.array(part, { maxLength: 8 }).map((p) => p.join('/')), fc.array(part, { maxLength: 8 }).map((p) => `/${p.join('/')}`), fc.string({ unit: 'binary', maxLength: 40 }), fc.constant('€'.repeat(1500)));
    const allowed: ZerobootErrorCode[] = ['INVALID_ARGUMENT', 'PATH_OUTSIDE_SANDBOX', 'FILE_NOT_FOUND'];
    await fc.assert(
      fc.asyncProperty(path, fc.constantFrom('write', 'read', 'list', 'exists', 'remove'), counted(async (p, op) => {
        const call = () => (op === 'write' ? sb.files.write(p, 'x') : op === 'read' ? sb.files.read(p) : op === 'list' ? sb.files.list(p) : op === 'exists' ? sb.files.exists(p) : sb.files.remove(p));
        try {
          await within(call(), 10_000, `files.${op}(${JSON.stringify(p)})`);
        } catch (error) {
          if (!ZerobootError.isInstance(error)) throw error;
          if (!allowed.includes(error.code)) throw new Error(`files.${op}(${JSON.stringify(p)}): ${error.code}: ${error.message}`);
        }
      })),
      { numRuns: 300 },
    );
  }, 120_000);

  test('files API: malformed arguments of any type are INVALID_ARGUMENT', async () => {
    await fc.assert(
      fc.asyncProperty(anything, anything, counted(async (path, extra) => {
        fc.pre(typeof path !== 'string');
        for (const call of [() => sb.files.write(path as string, 'x'), () => sb.files.read(path as string), () => sb.files.exists(path as string), () => sb.files.remove(path as string)]) {
          await refusedWith(call, ['INVALID_ARGUMENT']);
        }
        if (path !== undefined) await refusedWith(() => sb.files.list(path as string), ['INVALID_ARGUMENT']); // list() lists '.'

        if (typeof extra !== 'string' && !(extra instanceof Uint8Array)) await refusedWith(() => sb.files.write('a.txt', extra as string), ['INVALID_ARGUMENT']);
        if (extra !== undefined && extra !== 'utf8' && extra !== 'utf-8') await refusedWith(() => sb.files.read('a.txt', extra as 'utf8'), ['INVALID_ARGUMENT']);
      })),
      { numRuns: RUNS },
    );
  });

  test('merge: a malformed branch or options is INVALID_ARGUMENT', async () => {
    const branch = await sb.branch();
    try {
      await fc.assert(
        fc.asyncProperty(fc.oneof(fc.constant(branch), anything), fc.oneof(fc.constant(undefined), optionsLike(['onConflict'])), counted(async (other, options) => {
          const onConflict = (options as { onConflict?: unknown } | undefined)?.onConflict;
          const validOptions = options === undefined || (typeof options === 'object' && options !== null && !Array.isArray(options) && [undefined, 'fail', 'ours', 'theirs'].includes(onConflict as string));
          fc.pre(other !== branch || !validOptions);
          await refusedWith(() => sb.merge(other as Sandbox, options as never), ['INVALID_ARGUMENT']);
        })),
        { numRuns: RUNS },
      );
    } finally {
      await branch.close();
    }
  });
});

describe('sandboxPath (files API paths)', () => {
  test('any string becomes an absolute, normal path inside the sandbox, or is refused with a stable code', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary' }), fc.array(fc.constantFrom('..', '.', '', 'a', 'workspace', '/', '//'), { maxLength: 12 }).map((p) => p.join('/'))), (path) => {
        executed++;
        let resolved: string;
        try {
          resolved = sandboxPath(path);
        } catch (error) {
          expect(ZerobootError.isInstance(error), String(error)).toBe(true);
          expect(['INVALID_ARGUMENT', 'PATH_OUTSIDE_SANDBOX']).toContain((error as ZerobootError).code);
          return;
        }
        expect(resolved.startsWith('/')).toBe(true);
        expect(resolved.includes('\0')).toBe(false);
        expect(resolved === '/' || !resolved.endsWith('/')).toBe(true);
        expect(resolved.slice(1).split('/').filter((c) => c === '' || c === '.' || c === '..')).toEqual(resolved === '/' ? [''] : []);
        expect(sandboxPath(resolved)).toBe(resolved);
        // A relative path without '..' stays under /workspace.
        if (!path.startsWith('/') && !path.split('/').includes('..')) expect(resolved === '/workspace' || resolved.startsWith('/workspace/')).toBe(true);
      }),
      { numRuns: RUNS * 5 },
    );
  });

  test('paths the kernel would refuse as too long are INVALID_ARGUMENT here, by bytes, not characters', () => {
    fc.assert(
      fc.property(fc.constantFrom('a', '€', '😀'), fc.integer({ min: 1, max: 6000 }), fc.boolean(), (unit, count, oneComponent) => {
        executed++;
        const name = unit.repeat(count);
        const path = oneComponent ? name : Array.from({ length: Math.ceil(count / 100) }, () => unit.repeat(100)).join('/');
        const bytes = Buffer.byteLength(`/workspace/${path}`);
        const longestComponent = Math.max(...path.split('/').map((c) => Buffer.byteLength(c)));
        let outcome: string;
        try {
          outcome = sandboxPath(path);
        } catch (error) {
          expect(ZerobootError.isInstance(error)).toBe(true);
          outcome = (error as ZerobootError).code;
        }
        // PATH_MAX is 4096 bytes with its NUL, a name at most NAME_MAX (255) bytes.
        expect(outcome === 'INVALID_ARGUMENT').toBe(bytes > 4000 || longestComponent > 255);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('runStep and the code tools', () => {
  test('resolveCodeToolOptions: malformed options are INVALID_ARGUMENT naming the field', async () => {
    const zb = fakeZeroboot();
    const keys = ['zeroboot', 'runtimes', 'workspace', 'merge', 'name', 'description', 'timeoutMs', 'maxOutputChars'];
    const shaped = fc.record({
      zeroboot: fc.oneof(fc.constant(zb), anything),
      runtimes: fc.oneof(fc.constant(['js']), fc.array(fc.oneof(fc.constant('js'), anything), { maxLength: 3 }), anything),
      merge: fc.oneof(fc.constantFrom('on-success', 'always', 'never'), anything),
      name: fc.oneof(fc.constant(undefined), fc.string(), anything),
      timeoutMs: fc.oneof(fc.constant(undefined), fc.integer(), anything),
      maxOutputChars: fc.oneof(fc.constant(undefined), fc.integer(), anything),
    }, { requiredKeys: [] });
    await fc.assert(
      fc.asyncProperty(fc.oneof(optionsLike(keys), shaped), counted(async (options) => {
        let resolved: unknown;
        try {
          resolved = resolveCodeToolOptions(options as never, 'codeTool');
        } catch (error) {
          expect(ZerobootError.isInstance(error), String((error as Error)?.stack ?? error)).toBe(true);
          expect((error as ZerobootError).code).toBe('INVALID_ARGUMENT');
          return;
        }
        expect(resolved).toMatchObject({ zeroboot: zb, runtimes: ['js'] }); // only the well-formed pass
      })),
      { numRuns: RUNS },
    );
  });

  test('runStep: malformed step options are INVALID_ARGUMENT (or UNKNOWN_RUNTIME), never a TypeError, and run nothing', async () => {
    const zb = fakeZeroboot();
    const workspace = await zb.sandbox();
    const shaped = fc.record({
      runtime: fc.oneof(fc.constant('js'), anything),
      code: fc.oneof(fc.constant('return {}'), anything),
      workspace: fc.oneof(fc.constant(undefined), fc.constant(workspace), anything),
      merge: fc.oneof(fc.constant(undefined), fc.constantFrom('on-success', 'always', 'never'), anything),
      timeoutMs: fc.oneof(fc.constant(undefined), fc.integer({ min: 1, max: 1000 }), anything),
      signal: fc.oneof(fc.constant(undefined), anything),
    }, { requiredKeys: [] });
    await fc.assert(
      fc.asyncProperty(fc.oneof(anything, shaped), counted(async (options) => {
        const o = options as Record<string, unknown> | null;
        const valid =
          typeof o === 'object' && o !== null && !Array.isArray(o) &&
          Object.keys(o).every((k) => ['runtime', 'code', 'workspace', 'merge', 'timeoutMs', 'signal'].includes(k)) &&
          o.runtime === 'js' && typeof o.code === 'string' &&
          (o.workspace === undefined || o.workspace === workspace) &&
          [undefined, 'on-success', 'always', 'never'].includes(o.merge as string) &&
          (o.timeoutMs === undefined || (Number.isInteger(o.timeoutMs) && (o.timeoutMs as number) >= 1)) &&
          (o.signal === undefined || o.signal instanceof AbortSignal);
        fc.pre(!valid);
        const calls = zb.calls.length;
        await refusedWith(() => runStep(zb, options as never), ['INVALID_ARGUMENT', 'UNKNOWN_RUNTIME']);
        expect(zb.calls.slice(calls).filter((c) => c.startsWith('run'))).toEqual([]);
      })),
      { numRuns: RUNS },
    );
  });
});

describe('the native protocol', () => {
  test('decodeMessage takes any bytes a sandbox can write: a message or undefined, never a throw', () => {
    const header = fc.tuple(fc.constantFrom(PROTOCOL_VERSION, 0, 1, 65535), fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }));
    const forged = fc.tuple(header, fc.uint8Array({ maxLength: 300 })).map(([[version, type, id, a, b], tail]) => {
      const buf = Buffer.alloc(MESSAGE_HEADER_SIZE + tail.length);
      buf.writeUInt16LE(version, 0);
      buf.writeUInt16LE(type, 2);
      buf.writeUInt32LE(id, 4);
      buf.writeInt32LE(a, 8);
      buf.writeInt32LE(b, 12);
      buf.set(tail, MESSAGE_HEADER_SIZE);
      return buf;
    });
    fc.assert(
      fc.property(fc.oneof(forged, fc.uint8Array({ maxLength: 600 }).map((u) => Buffer.from(u))), (data) => {
        executed++;
        const message = decodeMessage(data);
        if (data.length < MESSAGE_HEADER_SIZE || data.readUInt16LE(0) !== PROTOCOL_VERSION) {
          expect(message).toBeUndefined();
          return;
        }
        expect(message).toEqual({ type: data.readUInt16LE(2), id: data.readUInt32LE(4), a: data.readInt32LE(8), b: data.readInt32LE(12), text: expect.any(String) });
        expect(message!.text.includes('\0')).toBe(false);
      }),
      { numRuns: RUNS * 5 },
    );
  });

  test('encodeRequest: every part comes back from the fields the fork-server walks, byte for byte', () => {
    const bytes = fc.oneof(fc.string({ unit: 'grapheme', maxLength: 40 }), fc.uint8Array({ maxLength: 40 }));
    const parts = fc.record({
      code: fc.option(fc.string({ unit: 'binary', maxLength: 200 }), { nil: undefined }),
      env: fc.option(fc.dictionary(fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,10}$/), fc.string({ maxLength: 20 }).filter((s) => !s.includes('\0')), { maxKeys: 5 }), { nil: undefined }),
      stdin: fc.option(bytes, { nil: undefined }),
      files: fc.option(fc.dictionary(fc.string({ minLength: 1, maxLength: 30 }).filter((s) => !s.includes('\0')), bytes, { maxKeys: 4 }), { nil: undefined }),
      layers: fc.option(fc.record({ names: fc.array(fc.stringMatching(/^[a-z0-9-]{1,12}$/), { minLength: 1, maxLength: 5 }), diskBytes: fc.integer({ min: 0, max: 2 ** 40 }) }), { nil: undefined }),
      fileOp: fc.option(fc.record({ op: fc.integer({ min: 1, max: 5 }), path: fc.string({ minLength: 1, maxLength: 50 }) }), { nil: undefined }),
    }, { requiredKeys: [] });
    fc.assert(
      fc.property(parts, (p: RequestParts) => {
        executed++;
        const request = encodeRequest(p);
        expect(request.readUInt32LE(0)).toBe(0x5152425a);
        expect(request.readUInt16LE(4)).toBe(PROTOCOL_VERSION);
        expect(request.readUInt32LE(12)).toBe(request.length);
        const fields: Array<[number, Buffer]> = [];
        for (let offset = 16; offset < request.length; ) {
          const size = request.readUInt32LE(offset + 4);
          fields.push([request.readUInt32LE(offset), request.subarray(offset + 8, offset + 8 + size)]);
          offset += 8 + size;
          expect(offset).toBeLessThanOrEqual(request.length);
        }
        expect(fields.length).toBe(request.readUInt32LE(8));
        const of = (type: number) => fields.filter(([t]) => t === type).map(([, d]) => d);
        const b = (v: string | Uint8Array) => (typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v));
        expect(of(1)).toEqual(p.code === undefined ? [] : [b(p.code)]);
        expect(of(2).map((d) => d.toString('utf8'))).toEqual(Object.entries(p.env ?? {}).map(([k, v]) => `${k}=${v}`));
        expect(of(3)).toEqual(p.stdin === undefined ? [] : [b(p.stdin)]);
        expect(of(4)).toEqual(Object.entries(p.files ?? {}).map(([path, content]) => Buffer.concat([b(path), Buffer.of(0), b(content)])));
        if (p.layers) {
          const [layers] = of(5);
          expect(layers!.readBigUInt64LE(0)).toBe(BigInt(p.layers.diskBytes));
          expect(layers!.readUInt32LE(8)).toBe(p.layers.names.length);
          expect(layers!.subarray(16).toString('utf8')).toBe(p.layers.names.map((n) => `${n}\0`).join(''));
        } else expect(of(5)).toEqual([]);
        expect(of(6)).toEqual(p.fileOp ? [Buffer.concat([Buffer.from(Uint32Array.of(p.fileOp.op).buffer), b(p.fileOp.path)])] : []);
        const memfd = memfdRequestHeader(request);
        expect(memfd.length).toBe(16);
        expect(memfd.readUInt16LE(6)).toBe(1);
        expect(memfd.readUInt32LE(12)).toBe(request.length);
      }),
      { numRuns: RUNS * 2 },
    );
  });
});
