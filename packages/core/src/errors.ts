/**
 * Every error the SDK throws is a {@link ZerobootError} with a stable {@link ZerobootErrorCode}: branch on
 * `code`, never on the message (which says what to do and may be reworded).
 */
export type ZerobootErrorCode =
  | 'INVALID_ARGUMENT'
  | 'UNKNOWN_RUNTIME'
  | 'UNSUPPORTED_PLATFORM'
  | 'KERNEL_FEATURE_MISSING'
  | 'SANDBOX_CLOSED'
  | 'ABORTED'
  | 'MERGE_CONFLICT'
  | 'PATH_OUTSIDE_SANDBOX'
  | 'FILE_NOT_FOUND'
  | 'DISK_QUOTA_EXCEEDED'
  | 'FORKSERVER_DIED'
  /** A sandbox could not be set up (which step and errno are in `step` and `errno`). */
  | 'SANDBOX_SETUP_FAILED';

const marker = Symbol.for('zeroboot.error');

export interface ZerobootErrorOptions {
  cause?: unknown;
  /** The setup step that failed, for SANDBOX_SETUP_FAILED and native errors (e.g. `'mount-proc'`). */
  step?: string;
  /** The errno name or number of a failed system call, when there is one. */
  errno?: number;
}

export class ZerobootError extends Error {
  readonly code: ZerobootErrorCode;
  readonly step: string | undefined;
  readonly errno: number | undefined;
  readonly [marker] = true;

  constructor(code: ZerobootErrorCode, message: string, options: ZerobootErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ZerobootError';
    this.code = code;
    this.step = options.step;
    this.errno = options.errno;
  }

  /** True for a ZerobootError from any copy of this package (instanceof fails across copies). */
  static isInstance(value: unknown): value is ZerobootError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[marker] === true;
  }
}

export function invalidArgument(field: string, expected: string, got: unknown): ZerobootError {
  return new ZerobootError('INVALID_ARGUMENT', `Expected \`${field}\` to be ${expected}, got ${describe(got)}.`);
}

export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  if (value === null || value === undefined || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : `an object`;
}
