/**
 * Up-front validation of options, shared by the hub, the brokers and the server, with messages
 * that name the option: "Expected `heartbeatMs` to be a positive integer, got `-1` (number)".
 * Each layer keeps its defaults in one frozen object next to its options type; these helpers only
 * check values. Convention: `undefined` means "the default", `null` means "off" (where allowed).
 */

/** `value`, or `fallback` when it is `undefined` (`null` is a value: "off", kept as is). */
export function withDefault<T>(value: T | undefined, fallback: T): T {
  return value === undefined ? fallback : value
}

/** Returns `value` when it is a positive safe integer, else throws a RangeError naming `name`. */
export function positiveInteger(name: string, value: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(
      `Expected \`${name}\` to be a positive integer, got \`${String(value)}\` (${typeof value})`,
    )
  }
  return value
}

/** Like {@link positiveInteger}, with `null` meaning "off" when `nullable`. */
export function positiveIntegerOption(
  name: string,
  value: number | null,
  nullable: boolean,
): number | null {
  if (value === null && nullable) return null
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(
      `Expected \`${name}\` to be a positive integer${nullable ? ' or null' : ''}, got \`${String(value)}\` (${typeof value})`,
    )
  }
  return value
}

/** Like {@link positiveIntegerOption}, 0 allowed (e.g. a `retry:` of 0 ms). */
export function nonNegativeIntegerOption(
  name: string,
  value: number | null,
  nullable: boolean,
): number | null {
  if (value === null && nullable) return null
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(
      `Expected \`${name}\` to be a non-negative integer${nullable ? ' or null' : ''}, got \`${String(value)}\` (${typeof value})`,
    )
  }
  return value
}

/** Returns `value` when it is one of `choices`, else throws a RangeError naming `name`. */
export function oneOfOption<T extends string>(name: string, value: T, choices: readonly T[]): T {
  if (!choices.includes(value)) {
    const list = choices.map((choice) => `'${choice}'`)
    const expected =
      list.length > 1 ? `${list.slice(0, -1).join(', ')} or ${list[list.length - 1]}` : list[0]
    throw new RangeError(
      `Expected \`${name}\` to be ${expected}, got \`${String(value)}\` (${typeof value})`,
    )
  }
  return value
}

/** Throws a TypeError unless `value` is an object (an options argument: `createHub(null)`). */
export function optionsObject<T extends object>(what: string, value: T): T {
  if (typeof value !== 'object' || value === null) {
    throw new TypeError(
      `Expected the ${what} options to be an object, got \`${String(value)}\` (${value === null ? 'null' : typeof value})`,
    )
  }
  return value
}

/** Returns `value` when it is a boolean, else throws a TypeError naming `name`. */
export function booleanOption(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean')
    throw new TypeError(`Expected \`${name}\` to be true or false, got ${describe(value)}`)
  return value
}

/** Returns `value` when it is a non-empty string (or `null` when `nullable`), else a TypeError. */
export function textOption(name: string, value: unknown, nullable: boolean): string | null {
  if (value === null && nullable) return null
  if (typeof value !== 'string' || value === '')
    throw new TypeError(
      `Expected \`${name}\` to be a non-empty string${nullable ? ' or null' : ''}, got ${describe(value)}`,
    )
  return value
}

/** A value as an error message shows it: `-1` (number), `""` (string), an object by its type. */
function describe(value: unknown): string {
  if (typeof value === 'string') return `${JSON.stringify(value)} (string)`
  if (value === null || typeof value !== 'object') return `\`${String(value)}\` (${typeof value})`
  return `an ${Array.isArray(value) ? 'array' : 'object'}`
}
